"""Emotion Consistency Metric (ECM, AffectSRNet) — the fixed definition of docs/spec/conventions.md §5.

For N HR images (the "original") and their SR outputs, a FER model gives softmax probabilities
p_i, q_i over C classes.  Then

* L_H = Σ_c Σ_b (h_c[b] − h'_c[b])², h_c = numpy ``histogram(p[:, c], bins=10, range=(0, 1),
  density=True)`` (bin heights count/(N·0.1); the value 1.0 falls in the last bin), h' likewise from q;
* L_conf = (1/N) Σ_i |E(p_i) − E(q_i)|, E(p) = −Σ_c p_c ln max(p_c, 1e-12) (natural log);
* ECM = 0.5·L_H + ln(max(L_conf, 1e-6)).  Lower is better; a perfect reconstruction gets ln(1e-6).

ECM is a *set-level* number (not a mean of per-image values): the per-image table stores the FER
probabilities and entropies of HR and SR so the value can be recomputed from it, and ``summarize`` adds a
seeded percentile-bootstrap CI over images.  The paper's FER model (DDAMFN++) has no offline weights, so
fsrbench's ECM (default FER: mini-Xception, FER2013) is not comparable with the paper's numbers, and ECM of
datasets with different N must not be compared (density histograms of small N have a noise floor).

Expects: ``per_image(sr_u8[B,H,W,3], hr_u8[B,H,W,3], ctx)``; option ``fer`` (a registered FER plugin name,
default ``mini-xception``), the FER input options ``fer_box`` / ``fer_fallback`` / ``fer_flip``
(:mod:`fsrbench.analysis.fer_input`; the summary's ``fer_model`` is the FER pipeline id), ``n_boot`` (1000),
``seed`` (0).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from fsrbench.api import CellContext, Metric, Unavailable
from fsrbench.metrics.face_common import FERMetricMixin, fallback_count
from fsrbench.stats import bootstrap_ci

ECM_BINS = 10
ECM_ALPHA = 0.5
ENTROPY_FLOOR = 1e-12
LCONF_FLOOR = 1e-6
ECM_IDEAL = math.log(LCONF_FLOOR)
MAX_CLASSES = 8  # per-image probability slots in the table (unused slots are NaN)


def entropy(p: np.ndarray) -> np.ndarray:
    """Natural-log entropy of each row of ``p`` [N,C], with probabilities floored at 1e-12 inside the log."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(np.maximum(p, ENTROPY_FLOOR))).sum(axis=-1)


def density_histograms(p: np.ndarray, bins: int = ECM_BINS) -> np.ndarray:
    """[C, bins] density histograms of each class column of ``p`` [N,C] on [0,1] (numpy convention)."""
    p = np.asarray(p, dtype=np.float64)
    return np.stack([np.histogram(p[:, c], bins=bins, range=(0.0, 1.0), density=True)[0]
                     for c in range(p.shape[1])])


def ecm(p_hr: np.ndarray, p_sr: np.ndarray, bins: int = ECM_BINS, alpha: float = ECM_ALPHA) -> dict[str, Any]:
    """ECM of one set: ``p_hr``, ``p_sr`` are [N,C] softmax probabilities (row i = the same image).

    Returns ``{"ecm", "L_H", "L_conf", "N", "C", "bins"}``.
    """
    p_hr = np.asarray(p_hr, dtype=np.float64)
    p_sr = np.asarray(p_sr, dtype=np.float64)
    if p_hr.ndim != 2 or p_hr.shape != p_sr.shape:
        raise ValueError(f"ECM needs two [N,C] probability arrays of the same shape, got {p_hr.shape} and {p_sr.shape}")
    n, c = p_hr.shape
    if n == 0:
        return {"ecm": float("nan"), "L_H": float("nan"), "L_conf": float("nan"), "N": 0, "C": c, "bins": bins}
    l_h = float(((density_histograms(p_hr, bins) - density_histograms(p_sr, bins)) ** 2).sum())
    l_conf = float(np.abs(entropy(p_hr) - entropy(p_sr)).mean())
    value = alpha * l_h + math.log(max(l_conf, LCONF_FLOOR))
    return {"ecm": value, "L_H": l_h, "L_conf": l_conf, "N": int(n), "C": int(c), "bins": int(bins)}


def _ecm_value(p_hr: np.ndarray, p_sr: np.ndarray) -> float:
    return ecm(p_hr, p_sr)["ecm"]


def ecm_resampled(p_hr: np.ndarray, p_sr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ECM of every bootstrap resample at once (rows of ``idx`` [n_boot, N]); the same value as
    ``_ecm_value(p_hr[i], p_sr[i])`` for each row ``i`` of ``idx`` (to ~1e-12).

    A resample's density histogram is (multiplicity matrix W [n_boot, N]) @ (one-hot bin membership
    [N, C*bins]) / (N * bin width); L_conf is W @ |H(hr) - H(sr)| / N.  Bins follow numpy.histogram on
    [0, 1] (left-closed, the last bin also holds 1.0)."""
    n, c = p_hr.shape
    edges = np.linspace(0.0, 1.0, ECM_BINS + 1)

    def onehot(p: np.ndarray) -> np.ndarray:
        b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, ECM_BINS - 1)
        out = np.zeros((n, c, ECM_BINS))
        np.put_along_axis(out, b[:, :, None], 1.0, axis=2)
        return out.reshape(n, c * ECM_BINS)

    w = np.zeros((idx.shape[0], n))
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    np.add.at(w, (rows, idx.ravel()), 1.0)
    width = 1.0 / ECM_BINS
    h = (w @ (onehot(p_hr) - onehot(p_sr))) / (n * width)
    l_h = (h ** 2).sum(axis=1)
    l_conf = w @ np.abs(entropy(p_hr) - entropy(p_sr)) / n
    return ECM_ALPHA * l_h + np.log(np.maximum(l_conf, LCONF_FLOOR))


_ecm_value.resampled = ecm_resampled  # type: ignore[attr-defined]  # paired bootstraps use the vectorised form


def prob_columns(side: str) -> tuple[str, ...]:
    return tuple(f"ecm_p_{side}_{k}" for k in range(MAX_CLASSES))


class ECM(FERMetricMixin, Metric):
    """Set-level ECM (lower is better) with a seeded bootstrap CI; per-image table keeps the FER outputs."""

    name: ClassVar[str] = "ecm"
    summary_columns: ClassVar[dict[str, str]] = {}  # ECM is a set statistic, not a mean (set_statistic)
    set_statistics: ClassVar[tuple[str, ...]] = ("ecm",)
    stored_columns: ClassVar[tuple[str, ...] | None] = prob_columns("hr") + prob_columns("sr")
    board_order: ClassVar[float] = 40
    compare_n_boot: ClassVar[int] = 1000
    higher_is_better: ClassVar[bool] = False
    ideal: ClassVar[float | None] = ECM_IDEAL
    description: ClassVar[str] = ("Emotion Consistency Metric (AffectSRNet): 0.5*L_H + ln(max(L_conf,1e-6)) on FER "
                                  "probabilities of HR vs SR; set-level; not comparable with the paper (other FER model)")
    columns: ClassVar[tuple[str, ...]] = (
        ("ecm_entropy_hr", "ecm_entropy_sr", "ecm_abs_entropy_diff") + prob_columns("hr") + prob_columns("sr")
        + ("ecm_reason", "ecm_fer_fallback"))

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.fer_name = str(self.options.get("fer", "mini-xception"))
        self.n_boot = int(self.options.get("n_boot", 1000))
        self.seed = int(self.options.get("seed", 0))
        self._fer: Any = None

    def check_fer(self, fer: Any) -> None:
        if len(fer.classes) > MAX_CLASSES:
            raise Unavailable(f"ECM stores at most {MAX_CLASSES} FER classes per image; "
                              f"{self.fer_name!r} has {len(fer.classes)}")

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        b = len(hr)
        p_hr, ok_hr, why_hr, p_sr, ok_sr, why_sr = self.fer_pair(sr, hr, ctx)
        ok = ok_hr & ok_sr
        c = p_hr.shape[1]
        out: dict[str, np.ndarray] = {}
        e_hr = np.where(ok, entropy(p_hr), np.nan)
        e_sr = np.where(ok, entropy(p_sr), np.nan)
        out["ecm_entropy_hr"], out["ecm_entropy_sr"] = e_hr, e_sr
        out["ecm_abs_entropy_diff"] = np.abs(e_hr - e_sr)
        for side, p in (("hr", p_hr), ("sr", p_sr)):
            for k, col in enumerate(prob_columns(side)):
                out[col] = np.where(ok, p[:, k], np.nan) if k < c else np.full(b, np.nan)
        out["ecm_reason"] = np.array([why_hr[i] or why_sr[i] for i in range(b)], dtype=object)
        out["ecm_fer_fallback"] = self.fer_fallbacks(hr, ctx)
        return out

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        c = len(self.fer.classes)
        p_hr = table[list(prob_columns("hr")[:c])].to_numpy(dtype=float)
        p_sr = table[list(prob_columns("sr")[:c])].to_numpy(dtype=float)
        ok = np.isfinite(p_hr).all(axis=1) & np.isfinite(p_sr).all(axis=1)
        seed = int((getattr(ctx, "options", None) or {}).get("seed", self.seed))
        res = bootstrap_ci(_ecm_value, (p_hr[ok], p_sr[ok]), n_boot=self.n_boot, seed=seed,
                           n_missing=int((~ok).sum()), recentre=True)
        parts = ecm(p_hr[ok], p_sr[ok])
        res.update({"L_H": parts["L_H"], "L_conf": parts["L_conf"], "N": parts["N"], "C": parts["C"],
                    "bins": parts["bins"], **self.fer_card(ctx),
                    "n_fer_fallback": fallback_count(table, "ecm_fer_fallback"), "comparable_with_paper": False,
                    "higher_is_better": False, "ideal": ECM_IDEAL, "primary": True})
        return {"ecm": res}

    def set_statistic(self, key: str, table: Any) -> Any:
        """ECM is a statistic of the whole set: ``_ecm_value(p_hr, p_sr)`` over the FER probability columns
        that hold values in ``table`` (the FER model's classes), so stored results compare without the FER
        model.  :meth:`compare` (inherited) is the paired bootstrap of ECM(A) - ECM(B) on the images both
        methods scored (negative: A is better), through the vectorised :func:`ecm_resampled`.  This is how
        methods are ranked on ECM (the board's "ECM paired against a reference"): at small N the ECM of one
        set carries a large noise floor that mostly cancels in the paired difference."""
        if key != "ecm":
            return None
        hr = [c for c in prob_columns("hr") if c in table and table[c].notna().any()]
        sr = [c for c in prob_columns("sr") if c in table and table[c].notna().any()]
        if not hr or len(hr) != len(sr):
            return None
        return _ecm_value, [hr, sr]
