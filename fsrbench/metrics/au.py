"""AU F1: facial-action-unit fidelity of SR images (MPENet protocol, docs/spec/conventions.md §6, with the estimator of docs/spec/au.md).

AUs come from an AU plugin (option ``au``, default ``geometric`` = the estimator of docs/spec/au.md: landmark geometry
on MediaPipe's 478 points — *not* OpenFace, so the numbers are not comparable with the MPENet paper).
Landmarks of HR and SR are both fitted with MediaPipe in the **HR face box** (docs/spec/au.md §1).

Reference labels: the dataset's AU labels when every sample of the batch carries them (``meta["aus"]`` =
``{"AU12": 0/1, ...}``, or metadata columns named ``AU12`` etc. from a folder's labels.csv; AUs without a
label fall back to HR presence), otherwise AU presence predicted on the HR image.  The per-image column ``au_ref_source`` and the summary's ``reference`` say which.

Per AU: F1 = 2TP / (2TP + FP + FN) over all images of the cell (positive = present), accuracy =
(TP + TN) / N.  AUs without any reference positive are skipped.  Summaries:

* ``au_f1`` — macro F1 over the 6 validated AUs (AU05, AU06, AU12, AU20, AU25, AU26), the primary number;
* ``au_f1_all`` — macro F1 over all 15 AUs (secondary; includes AUs that are unreliable at 128 px);
* ``au_acc`` — macro accuracy over the 6-AU subset;
all with a seeded percentile-bootstrap CI over images (options ``n_boot`` 1000, ``seed`` 0), plus per-AU
F1, the AUs used, the threshold and the model ids.  Failures (no HR face, landmark failure) are NaN rows
with a reason in ``au_reason``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fsrbench.api import CellContext, Metric
from fsrbench.stats import align_tables, bootstrap_ci, paired_comparison

AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU15", "AU17", "AU20", "AU23",
       "AU25", "AU26")
SUBSET = ("AU05", "AU06", "AU12", "AU20", "AU25", "AU26")


def au_labels(meta: dict[str, Any] | None) -> dict[str, float]:
    """Dataset AU labels of one sample: ``meta["aus"]`` (dict) or columns named like ``AU12`` / ``au12``
    (e.g. from a folder dataset's labels.csv); values 0/1 (strings allowed; empty = unlabelled)."""
    meta = meta or {}
    raw = meta.get("aus") if isinstance(meta.get("aus"), dict) else {
        k: v for k, v in meta.items() if isinstance(k, str) and k.upper() in AUS}
    out: dict[str, float] = {}
    for k, v in raw.items():
        name = str(k).upper()
        if name not in AUS or v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            continue
        try:
            out[name] = float(float(v) > 0)
        except ValueError:
            continue
    return out


def f1_per_au(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 of each column of boolean/0-1 arrays [N, K] (NaN where the column has no reference positive)."""
    ref = np.asarray(ref, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    tp = (ref & pred).sum(0)
    fp = (~ref & pred).sum(0)
    fn = (ref & ~pred).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (2 * tp + fp + fn)
    return np.where(ref.sum(0) > 0, f1, np.nan)


def macro_f1(ref: np.ndarray, pred: np.ndarray) -> float:
    f = f1_per_au(ref, pred)
    return float(np.nanmean(f)) if np.isfinite(f).any() else float("nan")


def macro_accuracy(ref: np.ndarray, pred: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    keep = ref.sum(0) > 0
    if not keep.any() or len(ref) == 0:
        return float("nan")
    return float((ref == pred).mean(0)[keep].mean())


class AUF1(Metric):
    """Macro AU F1 of SR against HR (or dataset) AU presence; 6 validated AUs primary, 15 secondary."""

    name: ClassVar[str] = "au_f1"
    summary_columns: ClassVar[dict[str, str]] = {}  # AU F1 is a set statistic, not a mean (set_statistic)
    set_statistics: ClassVar[tuple[str, ...]] = ("au_f1", "au_f1_all")
    stored_columns: ClassVar[tuple[str, ...] | None] = (
        tuple(f"au_ref_{a}" for a in AUS) + tuple(f"au_sr_{a}" for a in AUS) + ("au_ref_source",))
    board_order: ClassVar[float] = 60
    compare_n_boot: ClassVar[int] = 1000
    higher_is_better: ClassVar[bool] = True
    ideal: ClassVar[float | None] = 1.0
    unit: ClassVar[str] = "F1"
    description: ClassVar[str] = ("macro F1 of AU presence on SR vs HR (landmark-geometry AU estimator on MediaPipe "
                                  "478 points; not OpenFace, not comparable with MPENet)")
    columns: ClassVar[tuple[str, ...]] = (
        ("au_agree",) + tuple(f"au_ref_{a}" for a in AUS) + tuple(f"au_sr_{a}" for a in AUS)
        + tuple(f"au_score_hr_{a}" for a in AUS) + tuple(f"au_score_sr_{a}" for a in AUS)
        + ("au_ref_source", "au_reason"))

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.au_name = str(self.options.get("au", "geometric"))
        self.n_boot = int(self.options.get("n_boot", 1000))
        self.seed = int(self.options.get("seed", 0))
        thr = self.options.get("au_threshold")
        self.threshold: float | None = None if thr is None else float(thr)
        self._est: Any = None

    def setup(self, device: Any = "cpu") -> None:
        from fsrbench.metrics.face_common import get_au_estimator, get_mesh

        self._est = get_au_estimator(self.au_name)
        missing = [a for a in AUS if a not in tuple(self._est.aus)]
        if missing:
            from fsrbench.api import Unavailable

            raise Unavailable(f"AU estimator {self.au_name!r} lacks {missing}; au_f1 needs {AUS}")
        get_mesh()

    @property
    def estimator(self) -> Any:
        if self._est is None:
            self.setup()
        return self._est

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        from fsrbench.metrics.face_common import mesh_hr, mesh_sr

        est = self.estimator
        b = len(hr)
        h = mesh_hr(hr, ctx)
        s = mesh_sr(sr, hr, ctx)
        ok = s["ok"]  # includes HR failures
        cols = [list(est.aus).index(a) for a in AUS]
        score_hr = np.full((b, len(AUS)), np.nan)
        score_sr = np.full((b, len(AUS)), np.nan)
        if ok.any():
            score_hr[ok] = est.estimate(h["points"][ok])[:, cols]
            score_sr[ok] = est.estimate(s["points"][ok])[:, cols]
        ok = ok & np.isfinite(score_hr).all(1) & np.isfinite(score_sr).all(1)
        reason = [s["reason"][i] or ("" if ok[i] else "AU scores not finite (degenerate landmarks)")
                  for i in range(b)]
        ref = self._present(est, score_hr, self.threshold)
        pred = self._present(est, score_sr, self.threshold)
        source = np.array(["hr"] * b, dtype=object)
        meta = list(ctx.meta or [])
        labelled = [au_labels(m) for m in meta]
        if len(meta) == b and b and all(lab for lab in labelled):
            for i, labels in enumerate(labelled):
                for k, a in enumerate(AUS):
                    if a in labels:
                        ref[i, k] = labels[a]
                source[i] = "labels"
        ref[~ok], pred[~ok] = np.nan, np.nan
        score_hr[~ok], score_sr[~ok] = np.nan, np.nan
        sub = [AUS.index(a) for a in SUBSET]
        out: dict[str, np.ndarray] = {"au_agree": np.where(ok, (ref[:, sub] == pred[:, sub]).mean(1), np.nan)}
        for k, a in enumerate(AUS):
            out[f"au_ref_{a}"] = ref[:, k]
            out[f"au_sr_{a}"] = pred[:, k]
            out[f"au_score_hr_{a}"] = score_hr[:, k]
            out[f"au_score_sr_{a}"] = score_sr[:, k]
        out["au_ref_source"] = np.where(ok, source, "").astype(object)
        out["au_reason"] = np.array(reason, dtype=object)
        return out

    @staticmethod
    def _present(est: Any, scores: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Presence (0/1) of AU scores given in ``AUS`` order: Score > ``threshold`` when the option
        ``au_threshold`` is set, else the estimator's own rule (geometric: Score > 1)."""
        s = np.nan_to_num(scores, nan=-np.inf)
        if threshold is not None:
            return (s > threshold).astype(float)
        full = np.full((len(s), len(est.aus)), -np.inf)  # present() expects the estimator's own AU order
        for j, name in enumerate(est.aus):
            if name in AUS:
                full[:, j] = s[:, AUS.index(name)]
        back = np.asarray(est.present(full), dtype=float)
        return back[:, [list(est.aus).index(a) for a in AUS]]

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        ref = table[[f"au_ref_{a}" for a in AUS]].to_numpy(dtype=float)
        pred = table[[f"au_sr_{a}" for a in AUS]].to_numpy(dtype=float)
        ok = np.isfinite(ref).all(1) & np.isfinite(pred).all(1)
        n_missing = int((~ok).sum())
        ref, pred = ref[ok] > 0.5, pred[ok] > 0.5
        sub = [AUS.index(a) for a in SUBSET]
        sources = set(str(x) for x in table.loc[ok, "au_ref_source"]) if "au_ref_source" in table else {"hr"}
        sources.discard("")
        sources.discard("nan")
        reference = ("dataset AU labels" if sources == {"labels"} else
                     "AU presence on HR" if sources <= {"hr"} else "mixed: dataset labels where present, else HR")
        est = self.estimator
        seed = int((getattr(ctx, "options", None) or {}).get("seed", self.seed))
        thr = self.threshold if self.threshold is not None else getattr(est, "threshold", None)
        extra = {"reference": reference, "au_estimator": est.id, "threshold": thr,
                 "landmarks": "mediapipe478 fitted in the HR face box", "comparable_with_paper": False}
        f_sub = f1_per_au(ref[:, sub], pred[:, sub])
        f_all = f1_per_au(ref, pred)
        res_sub = bootstrap_ci(lambda r, p: macro_f1(r[:, sub], p[:, sub]), (ref, pred), self.n_boot, seed,
                               n_missing=n_missing)
        res_sub.update(extra, aus=[a for a, f in zip(SUBSET, f_sub) if np.isfinite(f)],
                       per_au={a: (None if not np.isfinite(f) else float(f)) for a, f in zip(SUBSET, f_sub)},
                       higher_is_better=True, ideal=1.0, primary=True)
        res_all = bootstrap_ci(macro_f1, (ref, pred), self.n_boot, seed, n_missing=n_missing)
        res_all.update(extra, aus=[a for a, f in zip(AUS, f_all) if np.isfinite(f)],
                       per_au={a: (None if not np.isfinite(f) else float(f)) for a, f in zip(AUS, f_all)},
                       higher_is_better=True, ideal=1.0, primary=False)
        res_acc = bootstrap_ci(lambda r, p: macro_accuracy(r[:, sub], p[:, sub]), (ref, pred), self.n_boot,
                               seed, n_missing=n_missing)
        res_acc.update(extra, higher_is_better=True, ideal=1.0, primary=False)
        return {"au_f1": res_sub, "au_f1_all": res_all, "au_acc": res_acc}

    def set_statistic(self, key: str, table: Any) -> Any:
        """AU F1 is a statistic of the whole set: macro F1 of presence (score > 0.5) over the 6 validated AUs
        (``au_f1``) or all 15 (``au_f1_all``), from the reference and SR AU columns."""
        if key not in ("au_f1", "au_f1_all"):
            return None
        ref = [f"au_ref_{x}" for x in AUS]
        pred = [f"au_sr_{x}" for x in AUS]
        if not all(c in table for c in ref + pred):
            return None
        sub = [AUS.index(x) for x in SUBSET] if key == "au_f1" else list(range(len(AUS)))

        def stat(r: np.ndarray, p: np.ndarray) -> float:
            return float(macro_f1(r[:, sub] > 0.5, p[:, sub] > 0.5))

        return stat, [ref, pred]

    def compare(self, table_a: Any, table_b: Any, ctx: CellContext | None = None, *, keys: Any = None,
                n_boot: int | None = None, seed: int | None = None, confidence: float = 0.95) -> dict[str, Any]:
        """Paired bootstrap of AU-F1(A) - AU-F1(B) (6-AU subset and 15 AUs, :meth:`set_statistic`) on the
        images both scored; by default also a Wilcoxon test on the per-image subset agreement ``au_agree``."""
        out = super().compare(table_a, table_b, ctx, keys=keys, n_boot=n_boot, seed=seed, confidence=confidence)
        if keys is None and "au_agree" in table_a and "au_agree" in table_b:
            a, b = align_tables(table_a, table_b)
            n_boot, seed = self.resampling(ctx, n_boot, seed)
            out["au_agree"] = paired_comparison(a["au_agree"].to_numpy(dtype=float), b["au_agree"].to_numpy(dtype=float),
                                                n_boot, seed, confidence)
        return out
