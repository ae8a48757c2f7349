"""Statistics for dataset-level numbers: confidence intervals and paired comparisons.

Every summary value is a dict ``{"value", "ci_low", "ci_high", "n", "n_missing"}`` so that tables can show
the CI and the failure count beside the number.  Three tools:

* :func:`mean_ci` -- mean of per-image values with a closed-form Student-t CI (PSNR, SSIM, NME, cosine...).
* :func:`bootstrap_ci` -- seeded percentile bootstrap over images for set-level statistics that are not
  means of per-image values (ECM, AU F1).  The statistic is a function of the per-image rows; each
  resample draws N rows with replacement.  The number of resamples, the seed and the method are returned
  with the interval so the number can be reproduced.
* :func:`paired_comparison` / :func:`paired_bootstrap_set` -- two methods scored on the *same* images:
  the mean (or set-level) difference A - B with a paired-bootstrap CI, a bootstrap p-value and, for
  per-image values, the Wilcoxon signed-rank test (scipy).  Pairing removes the between-image variance,
  so these intervals are much tighter than comparing two independent CIs.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_N_BOOT = 1000
DEFAULT_SEED = 0


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean with a closed-form Student-t CI over the finite values; NaNs are counted as missing.

    Infinite values (PSNR of an SR image identical to its HR, e.g. an all-black face) are left out of the mean
    and the CI and counted in ``n_inf`` (``n`` counts every image with a value, infinite ones included; the
    mean and CI are over the ``n - n_inf`` finite ones), so one image cannot turn a
    summary into inf.  [CHOICE] stats.infinite_values: report the finite-image mean with the count of infinite
    ones (rather than capping each value, as pyiqa's eps of 1e-8 (~80 dB) or the common "return 100" do: a cap
    changes the per-image number and, for 8-bit 128x128 images, lies below the largest finite PSNR, ~95 dB).
    When every value is infinite with one sign (the hr-oracle), the mean is that infinity with the CI
    [inf, inf].
    """
    v = np.asarray(values, dtype=float)
    n_missing = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    infinite = np.isinf(v)
    n_inf = int(infinite.sum())
    out: dict[str, Any] = {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                           "n": int(v.size), "n_missing": n_missing}
    if n_inf:
        out["n_inf"] = n_inf
    if v.size == 0:
        return out
    if n_inf == v.size:  # all infinite: the mean is that infinity when they share a sign
        if np.all(v == v[0]):
            out["value"] = out["ci_low"] = out["ci_high"] = float(v[0])
        return out
    v = v[~infinite]
    n = int(v.size)
    mean = float(v.mean())
    out["value"] = mean
    if n == 1:
        return out
    from scipy import stats as _st  # scipy.stats takes ~0.8 s to import: only when a CI is computed

    sem = float(v.std(ddof=1) / math.sqrt(n))
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1) * sem) if sem > 0 else 0.0
    out["ci_low"], out["ci_high"] = mean - half, mean + half
    return out


def _as_columns(data: Any) -> tuple[list[np.ndarray], int]:
    """Normalise ``data`` (an array, or a sequence/tuple of arrays sharing axis 0) to a list of arrays."""
    if isinstance(data, np.ndarray):
        arrays = [data]
    else:
        arrays = [np.asarray(a) for a in data]
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    n = int(arrays[0].shape[0])
    for a in arrays:
        if int(a.shape[0]) != n:
            raise ValueError(f"arrays must share their first axis (got {[x.shape for x in arrays]})")
    return arrays, n


def resample_indices(n: int, n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The bootstrap index matrix [n_boot, n] (rows drawn with replacement), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(statistic: Callable[..., float], data: Any, n_boot: int = DEFAULT_N_BOOT,
                 seed: int = DEFAULT_SEED, confidence: float = 0.95, n_missing: int = 0,
                 recentre: bool = False) -> dict[str, Any]:
    """Percentile-bootstrap CI of a set-level ``statistic(*arrays) -> float`` over the rows of ``data``.

    ``data`` is one array or a sequence of arrays sharing axis 0 (one row per image; drop rows with
    missing values before calling and pass their count as ``n_missing``).  Resamples whose statistic is
    not finite (e.g. an F1 with no positives in the resample) are left out of the percentiles and
    counted in ``n_boot_invalid``.  Returns ``value`` (the statistic on the full data), ``ci_low``,
    ``ci_high``, ``n``, ``n_missing``, ``n_boot``, ``seed``, ``ci_method`` ("percentile bootstrap"),
    ``boot_median``.

    ``recentre=True`` shifts the percentile interval by ``value - median(resampled statistics)`` so that it
    is centred on the estimate.  Use it for statistics whose resamples are biased by construction: a
    resample drawn with replacement holds ~37% duplicated images, which raises the noise floor of
    histogram statistics such as ECM's L_H, so the plain percentile interval of ECM lies *above* the
    estimate.  The re-centred interval keeps the bootstrap's spread and drops that artefact.
    """
    arrays, n = _as_columns(data)
    out: dict[str, Any] = {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                           "n": n, "n_missing": int(n_missing), "n_boot": int(n_boot), "seed": int(seed),
                           "ci_method": "percentile bootstrap", "n_boot_invalid": 0}
    if n == 0:
        return out
    out["value"] = float(statistic(*arrays))
    if n < 2 or n_boot <= 0:
        return out
    idx = resample_indices(n, n_boot, seed)
    boots = np.array([statistic(*[a[i] for a in arrays]) for i in idx], dtype=float)
    ok = np.isfinite(boots)
    out["n_boot_invalid"] = int((~ok).sum())
    if ok.sum() == 0:
        return out
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(boots[ok], [alpha, 1 - alpha])
    med = float(np.median(boots[ok]))
    out["boot_median"] = med
    if recentre:
        shift = med - out["value"]
        lo, hi = lo - shift, hi - shift
        out["ci_method"] = "percentile bootstrap, re-centred on the estimate"
    out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out


def _bootstrap_p(boots: np.ndarray) -> float:
    """Two-sided bootstrap p-value for "difference = 0": 2 * min(share <= 0, share >= 0), capped at 1."""
    b = boots[np.isfinite(boots)]
    if b.size == 0:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(b <= 0), np.mean(b >= 0))))


def paired_comparison(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = DEFAULT_SEED,
                      confidence: float = 0.95) -> dict[str, Any]:
    """Compare two methods' per-image values on the same images (row i of ``a`` and ``b`` = same image).

    Rows where either value is NaN are dropped (counted in ``n_missing``).  Returns

    * ``effect``: mean(a - b); ``ci_low``/``ci_high``: paired percentile-bootstrap CI of that mean
      (``n_boot`` resamples of the image list, ``seed``);
    * ``p_bootstrap``: two-sided bootstrap p-value (2 * min share of resampled means on either side of 0);
    * ``p_wilcoxon`` and ``wilcoxon_statistic``: scipy's Wilcoxon signed-rank test on the differences
      (two-sided, zero differences dropped -- scipy's default; p = 1 when all differences are 0);
    * ``n``, ``n_missing``, ``n_boot``, ``seed``, ``mean_a``, ``mean_b``.

    Which direction is "better" depends on the metric (``Metric.higher_is_better``).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same images for both methods ({a.shape} vs {b.shape})")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    out: dict[str, Any] = {"effect": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                           "p_bootstrap": float("nan"), "p_wilcoxon": float("nan"),
                           "wilcoxon_statistic": float("nan"), "n": n, "n_missing": int((~keep).sum()),
                           "n_boot": int(n_boot), "seed": int(seed), "confidence": confidence,
                           "mean_a": float(a[keep].mean()) if n else float("nan"),
                           "mean_b": float(b[keep].mean()) if n else float("nan")}
    if n == 0:
        return out
    out["effect"] = float(d.mean())
    if n >= 2:
        idx = resample_indices(n, n_boot, seed)
        boots = d[idx].mean(axis=1)
        alpha = (1.0 - confidence) / 2
        lo, hi = np.quantile(boots, [alpha, 1 - alpha])
        out["ci_low"], out["ci_high"] = float(lo), float(hi)
        out["p_bootstrap"] = _bootstrap_p(boots)
    from scipy import stats as _st

    if np.all(d == 0):
        out["p_wilcoxon"], out["wilcoxon_statistic"] = 1.0, 0.0
    else:
        res = _st.wilcoxon(d)
        out["p_wilcoxon"], out["wilcoxon_statistic"] = float(res.pvalue), float(res.statistic)
    return out


def paired_bootstrap_set(statistic: Callable[..., float], data_a: Sequence[np.ndarray] | np.ndarray,
                         data_b: Sequence[np.ndarray] | np.ndarray, n_boot: int = DEFAULT_N_BOOT,
                         seed: int = DEFAULT_SEED, confidence: float = 0.95,
                         resampled: Callable[..., np.ndarray] | None = None) -> dict[str, Any]:
    """Paired bootstrap of a set-level statistic: effect = statistic(A) - statistic(B).

    ``data_a`` and ``data_b`` hold the per-image rows of the two methods on the *same* images (same row
    order); every resample uses the same image indices for both.  Returns ``effect``, ``ci_low``,
    ``ci_high``, ``p_bootstrap`` (two-sided), ``n``, ``n_boot``, ``seed``, ``value_a``, ``value_b``.
    Used for ECM and AU F1 differences between two methods.

    ``resampled(*arrays, idx)``, when given, computes the statistic of every resample at once (``idx`` is the
    [n_boot, N] index matrix of :func:`resample_indices`; one value per row) -- a vectorised form of
    ``[statistic(*[a[i] for a in arrays]) for i in idx]`` for statistics that are slow one resample at a
    time (ECM's histograms).  A statistic may carry it as its ``resampled`` attribute
    (:meth:`fsrbench.api.Metric.compare` passes it on).
    """
    arrays_a, n = _as_columns(data_a)
    arrays_b, n_b = _as_columns(data_b)
    if n != n_b:
        raise ValueError(f"paired comparison needs the same images for both methods ({n} vs {n_b} rows)")
    va = float(statistic(*arrays_a)) if n else float("nan")
    vb = float(statistic(*arrays_b)) if n else float("nan")
    out: dict[str, Any] = {"effect": va - vb, "ci_low": float("nan"), "ci_high": float("nan"),
                           "p_bootstrap": float("nan"), "n": n, "n_boot": int(n_boot), "seed": int(seed),
                           "confidence": confidence, "value_a": va, "value_b": vb,
                           "ci_method": "paired percentile bootstrap"}
    if n < 2:
        return out
    idx = resample_indices(n, n_boot, seed)
    if resampled is not None:
        boots = np.asarray(resampled(*arrays_a, idx), dtype=float) - np.asarray(resampled(*arrays_b, idx), dtype=float)
    else:
        boots = np.array([statistic(*[x[i] for x in arrays_a]) - statistic(*[x[i] for x in arrays_b])
                          for i in idx], dtype=float)
    ok = np.isfinite(boots)
    if ok.any():
        alpha = (1.0 - confidence) / 2
        lo, hi = np.quantile(boots[ok], [alpha, 1 - alpha])
        out["ci_low"], out["ci_high"] = float(lo), float(hi)
        out["p_bootstrap"] = _bootstrap_p(boots)
    return out


def align_tables(a: Any, b: Any, key: str = "image_id") -> tuple[Any, Any]:
    """Rows of two per-image tables (pandas) for the images both contain, in the same order.

    Tables without ``key`` are assumed to be aligned already (same length, same row order).
    """
    if key in getattr(a, "columns", ()) and key in getattr(b, "columns", ()):
        if a[key].tolist() == b[key].tolist():  # already aligned (the boards pass aligned tables)
            return a.reset_index(drop=True), b.reset_index(drop=True)
        in_b = set(b[key])
        ids = [i for i in a[key] if i in in_b]
        a2 = a.set_index(key).loc[ids].reset_index()
        b2 = b.set_index(key).loc[ids].reset_index()
        return a2, b2
    if len(a) != len(b):
        raise ValueError(f"tables without {key!r} must have the same rows ({len(a)} vs {len(b)})")
    return a.reset_index(drop=True), b.reset_index(drop=True)


def compare_means(table_a: Any, table_b: Any, columns: dict[str, str], n_boot: int = 2000,
                  seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """:func:`paired_comparison` of per-image columns ``{summary_name: column}`` of two aligned tables."""
    a, b = align_tables(table_a, table_b)
    return {name: paired_comparison(a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float), n_boot, seed)
            for name, col in columns.items() if col in a and col in b}
