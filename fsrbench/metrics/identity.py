"""Identity preservation: dlib 128-D face descriptors of SR vs HR (W-Net protocol, docs/spec/conventions.md §6).

Both descriptors are computed inside the **HR face box** (dlib HOG detection on HR). W-Net used AdaFace,
which has no offline weights; dlib's ResNet descriptor is the offline stand-in, so values are not
comparable with the paper's.  The model is option ``identity`` (``fsrbench run --identity NAME``): by
default ``dlib-torch`` (dlib's network rebuilt in PyTorch, batched, on the run's ``--device``; descriptors
within 1e-6 of dlib's), ``dlib`` runs dlib itself.  Per image:

* ``id_cos`` — cosine similarity of the two descriptors (ideal 1, higher is better);
* ``id_dist`` — Euclidean descriptor distance (dlib's same-person rule is < 0.6; ideal 0, lower is better).

Summaries: ``identity_cos`` (mean, closed-form CI), ``identity_share_ge_0.5`` ... ``_0.9`` (share of images
with cosine >= threshold, as in W-Net's figure; option ``thresholds``), ``identity_dist`` (mean) and
``identity_same_person`` (share with distance < 0.6).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fsrbench.api import CellContext, Metric
from fsrbench.stats import mean_ci

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
SAME_PERSON = 0.6


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the last axes, as 1 - |a/|a| - b/|b||^2 / 2 (exactly 1 for identical vectors)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = a / na - b / nb
        out = 1.0 - 0.5 * (d ** 2).sum(-1)
    return np.where((na[..., 0] > 0) & (nb[..., 0] > 0), out, np.nan)


class IdentitySimilarity(Metric):
    """Cosine similarity / distance of dlib identity descriptors, SR vs HR (HR box)."""

    name: ClassVar[str] = "identity"
    primary: ClassVar[tuple[str, ...]] = ("identity_cos",)
    # paired comparisons (Metric.compare) of cosine and distance
    summary_columns: ClassVar[dict[str, str]] = {"identity_cos": "id_cos", "identity_dist": "id_dist"}
    board_order: ClassVar[float] = 80
    higher_is_better: ClassVar[bool] = True
    ideal: ClassVar[float | None] = 1.0
    unit: ClassVar[str] = "cosine"
    description: ClassVar[str] = "cosine similarity of dlib 128-D descriptors of SR and HR (HR face box)"
    columns: ClassVar[tuple[str, ...]] = ("id_cos", "id_dist", "id_reason")

    def setup(self, device: Any = "cpu") -> None:
        from fsrbench.metrics.face_common import get_dlib68, get_identity_model

        get_dlib68()
        model = get_identity_model(self.options.get("identity") or None)
        if hasattr(model, "to_device"):  # dlib-torch: the network follows the run's --device
            model.to_device(device)

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        from fsrbench.metrics.face_common import descriptors, dlib_hr

        h = dlib_hr(hr, ctx)
        boxes = [bx if ok else None for bx, ok in zip(h["boxes"], h["ok"])]
        dh = descriptors(hr, boxes, ctx, "hr")
        ds = descriptors(sr, boxes, ctx, "sr")
        ok = h["ok"] & dh["ok"] & ds["ok"]
        reason = [h["reason"][i] or dh["reason"][i] or ds["reason"][i] if not ok[i] else "" for i in range(len(hr))]
        return {"id_cos": np.where(ok, cosine(ds["desc"], dh["desc"]), np.nan),
                "id_dist": np.where(ok, np.linalg.norm(ds["desc"] - dh["desc"], axis=1), np.nan),
                "id_reason": np.array(reason, dtype=object)}

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        cos = table["id_cos"].to_numpy(dtype=float)
        dist = table["id_dist"].to_numpy(dtype=float)
        model = "dlib resnet 128-D (HR face box); not comparable with W-Net's AdaFace numbers"
        out = {"identity_cos": dict(mean_ci(cos), model=model, higher_is_better=True, ideal=1.0,
                                 primary=True)}
        thresholds = tuple(float(t) for t in self.options.get("thresholds", THRESHOLDS))
        with np.errstate(invalid="ignore"):
            for t in thresholds:
                share = np.where(np.isfinite(cos), (cos >= t).astype(float), np.nan)
                out[f"identity_share_ge_{t:g}"] = dict(mean_ci(share), threshold=t, higher_is_better=True, ideal=1.0,
                                                    primary=False)
            same = np.where(np.isfinite(dist), (dist < SAME_PERSON).astype(float), np.nan)
        out["identity_dist"] = dict(mean_ci(dist), model=model, higher_is_better=False, ideal=0.0,
                                  primary=False)
        out["identity_same_person"] = dict(mean_ci(same), threshold=SAME_PERSON, higher_is_better=True,
                                        ideal=1.0, primary=False)
        return out
