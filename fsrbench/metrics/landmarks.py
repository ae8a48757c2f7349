"""Landmark distance between SR and HR faces (W-Net protocol, docs/spec/conventions.md §6) plus NME variants.

dlib's 68-point shape predictor is run on HR and SR with the **HR face box** (dlib HOG detection on HR;
never a fresh detection on SR), so the comparison measures the face geometry, not detector jitter.
Per image (pixels of the 128x128 image; ideal 0 everywhere, lower is better):

* ``lm_ld`` — W-Net's form: the L2 norm of the 136-value difference vector (= sqrt(68) x RMS point error);
* ``lm_mpe`` — mean point error (mean Euclidean distance over the 68 points), pixels;
* ``lm_nme`` — NME = mean point error / HR inter-ocular distance (outer eye corners, dlib points 36 and 45);
* ``lm_nme478`` — the same on MediaPipe's 478 points (2-D x, y; HR and SR both fitted in the HR MediaPipe
  box), normalised by the HR outer-eye-corner distance of the mesh (points 33 and 263, the mesh's
  counterparts of dlib's 36 and 45; option ``nme478_norm="centres"`` uses the eye-centre distance instead).

Dataset values are means with closed-form 95% CIs; failures (no HR face) are NaN with ``lm_reason``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fsrbench.api import CellContext, Metric
from fsrbench.stats import mean_ci

DLIB_OUTER_EYES = (36, 45)
MESH_OUTER_EYES = (33, 263)


def landmark_errors(p_sr: np.ndarray, p_hr: np.ndarray, eyes: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per-image LD (L2 norm of the stacked difference), mean point error and NME of [B,K,2] landmarks."""
    p_sr = np.asarray(p_sr, dtype=np.float64)[..., :2]
    p_hr = np.asarray(p_hr, dtype=np.float64)[..., :2]
    d = p_sr - p_hr
    ld = np.sqrt((d ** 2).sum(axis=(1, 2)))
    mpe = np.linalg.norm(d, axis=2).mean(axis=1)
    iod = np.linalg.norm(p_hr[:, eyes[1]] - p_hr[:, eyes[0]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nme = np.where(iod > 0, mpe / iod, np.nan)
    return {"ld": ld, "mpe": mpe, "nme": nme, "iod": iod}


class LandmarkDistance(Metric):
    """dlib-68 landmark distance (W-Net LD, mean point error, NME) and MediaPipe-478 NME, SR vs HR."""

    name: ClassVar[str] = "landmarks"
    primary: ClassVar[tuple[str, ...]] = ("landmark_nme", "landmark_ld")
    # paired comparisons (Metric.compare) of every landmark error
    summary_columns: ClassVar[dict[str, str]] = {"landmark_ld": "lm_ld", "landmark_mpe": "lm_mpe",
                                                 "landmark_nme": "lm_nme", "landmark_nme478": "lm_nme478"}
    board_order: ClassVar[float] = 70
    higher_is_better: ClassVar[bool] = False
    ideal: ClassVar[float | None] = 0.0
    unit: ClassVar[str] = "px / IOD"
    description: ClassVar[str] = ("landmark error SR vs HR with the HR face box: dlib-68 LD (W-Net: L2 norm of the "
                                  "136-d difference, px), mean point error, NME (outer eye corners); MediaPipe-478 NME")
    columns: ClassVar[tuple[str, ...]] = ("lm_ld", "lm_mpe", "lm_nme", "lm_nme478", "lm_iod", "lm_reason")

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.use_mesh = str(self.options.get("nme478", True)).lower() not in ("0", "false", "no")
        self.nme478_norm = str(self.options.get("nme478_norm", "outer"))
        if self.nme478_norm not in ("outer", "centres"):
            raise ValueError(f"option nme478_norm must be 'outer' or 'centres', got {self.nme478_norm!r}")

    def setup(self, device: Any = "cpu") -> None:
        from fsrbench.metrics.face_common import get_dlib68, get_mesh

        get_dlib68()
        if self.use_mesh:
            get_mesh()

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        from fsrbench.metrics.face_common import dlib_hr, dlib_sr, mesh_hr, mesh_sr

        b = len(hr)
        h = dlib_hr(hr, ctx)
        s = dlib_sr(sr, hr, ctx)
        e = landmark_errors(s["points"], h["points"], DLIB_OUTER_EYES)
        ok = s["ok"]
        out = {"lm_ld": np.where(ok, e["ld"], np.nan), "lm_mpe": np.where(ok, e["mpe"], np.nan),
               "lm_nme": np.where(ok, e["nme"], np.nan), "lm_iod": np.where(ok, e["iod"], np.nan)}
        reason = [("dlib " + r) if r else "" for r in s["reason"]]
        if self.use_mesh:
            mh = mesh_hr(hr, ctx)
            ms = mesh_sr(sr, hr, ctx)
            em = landmark_errors(ms["points"], mh["points"], MESH_OUTER_EYES)
            if self.nme478_norm == "centres":
                p = mh["points"]
                iod = np.linalg.norm((p[:, 263, :2] + p[:, 362, :2]) / 2 - (p[:, 33, :2] + p[:, 133, :2]) / 2, axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    em["nme"] = np.where(iod > 0, em["mpe"] / iod, np.nan)
            out["lm_nme478"] = np.where(ms["ok"], em["nme"], np.nan)
            reason = [r or (("mediapipe " + ms["reason"][i]) if ms["reason"][i] else "") for i, r in enumerate(reason)]
        else:
            out["lm_nme478"] = np.full(b, np.nan)
        out["lm_reason"] = np.array(reason, dtype=object)
        return out

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        common = {"higher_is_better": False, "ideal": 0.0, "box": "HR face box on HR and SR"}
        spec = {
            "landmark_ld": ("lm_ld", "px", "dlib-68, W-Net form: L2 norm of the 136-d difference"),
            "landmark_mpe": ("lm_mpe", "px", "dlib-68 mean point error"),
            "landmark_nme": ("lm_nme", "IOD", "dlib-68 mean point error / HR outer-eye-corner distance (36-45)"),
            "landmark_nme478": ("lm_nme478", "IOD", "MediaPipe-478 mean 2-D point error / HR " + (
                "outer-eye-corner distance (33-263)" if self.nme478_norm == "outer"
                else "eye-centre distance (midpoints 33-133, 263-362)")),
        }
        out = {}
        for key, (col, unit, what) in spec.items():
            if col == "lm_nme478" and not self.use_mesh:
                continue
            out[key] = dict(mean_ci(table[col].to_numpy(dtype=float)), unit=unit, definition=what, primary=key == "landmark_nme",
                            **common)
        return out
