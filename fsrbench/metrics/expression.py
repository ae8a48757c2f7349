"""Expression agreement: does the FER model still see the same expression after super-resolution?

Per image: the FER top-1 class on HR and on SR (same FER plugin, option ``fer``, default
``mini-xception``, both in the HR image's face box, :mod:`fsrbench.analysis.fer_input`; FER outputs shared
with ECM through :mod:`fsrbench.metrics.face_common`).

* ``expression_agreement`` — share of images whose top-1 class is unchanged (SR vs HR); ideal 1.
* ``expression_acc_hr`` / ``expression_acc_sr`` — only when the samples carry an emotion label
  (``meta["emotion"]``, e.g. from a folder dataset's ``labels.csv``): FER accuracy against the label on HR
  and on SR.  Label names are mapped to the FER model's classes through :data:`EMOTION_SYNONYMS`
  ("happiness" -> "happy", "anger" -> "angry", ...); labels the model has no class for (e.g. "contempt"
  for a 7-class model) and empty labels are left out and counted in ``n_missing``.

Means with closed-form CIs (shares of 0/1 values).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fsrbench.api import CellContext, Metric
from fsrbench.metrics.face_common import FERMetricMixin, fallback_count
from fsrbench.stats import mean_ci

EMOTION_SYNONYMS = {
    "angry": "angry", "anger": "angry", "an": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "neutral": "neutral", "ne": "neutral", "calm": "neutral",
    "contempt": "contempt",
}


def canonical_emotion(name: Any) -> str:
    """Map a label or class name to fsrbench's canonical emotion token ('' if empty/unknown)."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    key = str(name).strip().lower()
    return EMOTION_SYNONYMS.get(key, key if key else "")


def label_indices(meta: list[dict[str, Any]], classes: tuple[str, ...], n: int) -> np.ndarray:
    """Index of each sample's emotion label in ``classes`` (float, NaN when unlabelled or unmappable)."""
    lookup = {canonical_emotion(c): k for k, c in enumerate(classes)}
    out = np.full(n, np.nan)
    for i in range(min(n, len(meta or []))):
        lab = canonical_emotion((meta[i] or {}).get("emotion"))
        if lab in lookup:
            out[i] = lookup[lab]
    return out


class ExpressionAgreement(FERMetricMixin, Metric):
    """FER top-1 agreement SR vs HR, and FER accuracy on HR / SR when emotion labels exist."""

    name: ClassVar[str] = "expression"
    primary: ClassVar[tuple[str, ...]] = ("expression_agreement",)
    # paired comparisons (Metric.compare) of agreement and SR accuracy
    summary_columns: ClassVar[dict[str, str]] = {"expression_agreement": "expr_agree",
                                                 "expression_acc_sr": "expr_correct_sr"}
    stored_columns: ClassVar[tuple[str, ...] | None] = ("expr_agree", "expr_top_hr", "expr_top_sr", "expr_label",
                                                        "expr_correct_hr", "expr_correct_sr", "expr_fer_fallback")
    board_order: ClassVar[float] = 50
    higher_is_better: ClassVar[bool] = True
    ideal: ClassVar[float | None] = 1.0
    unit: ClassVar[str] = "share"
    description: ClassVar[str] = "share of images whose FER top-1 class is unchanged by SR; FER accuracy vs labels"
    columns: ClassVar[tuple[str, ...]] = ("expr_agree", "expr_top_hr", "expr_top_sr", "expr_label",
                                          "expr_correct_hr", "expr_correct_sr", "expr_reason",
                                          "expr_fer_fallback")

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.fer_name = str(self.options.get("fer", "mini-xception"))
        self._fer: Any = None

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        b = len(hr)
        p_hr, ok_hr, why_hr, p_sr, ok_sr, why_sr = self.fer_pair(sr, hr, ctx)
        ok = ok_hr & ok_sr
        top_hr = np.where(ok_hr, np.argmax(np.nan_to_num(p_hr, nan=-1), axis=1), -1).astype(float)
        top_sr = np.where(ok_sr, np.argmax(np.nan_to_num(p_sr, nan=-1), axis=1), -1).astype(float)
        top_hr[~ok_hr], top_sr[~ok_sr] = np.nan, np.nan
        label = label_indices(list(ctx.meta or []), tuple(self.fer.classes), b)
        has = np.isfinite(label)
        return {
            "expr_agree": np.where(ok, (top_hr == top_sr).astype(float), np.nan),
            "expr_top_hr": top_hr,
            "expr_top_sr": top_sr,
            "expr_label": label,
            "expr_correct_hr": np.where(has & ok_hr, (top_hr == label).astype(float), np.nan),
            "expr_correct_sr": np.where(has & ok_sr, (top_sr == label).astype(float), np.nan),
            "expr_reason": np.array([why_hr[i] or why_sr[i] for i in range(b)], dtype=object),
            "expr_fer_fallback": self.fer_fallbacks(hr, ctx),
        }

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        extra = dict(self.fer_card(ctx), n_fer_fallback=fallback_count(table, "expr_fer_fallback"))
        out = {"expression_agreement": dict(mean_ci(table["expr_agree"].to_numpy(dtype=float)), **extra,
                                            higher_is_better=True, ideal=1.0, primary=True)}
        labels = table["expr_label"].to_numpy(dtype=float)
        if np.isfinite(labels).any():
            for side in ("hr", "sr"):
                s = mean_ci(table[f"expr_correct_{side}"].to_numpy(dtype=float))
                s.update(extra, n_labelled=int(np.isfinite(labels).sum()), higher_is_better=True, primary=False,
                         ideal=None)
                out[f"expression_acc_{side}"] = s
        return out

