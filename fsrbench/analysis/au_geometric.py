"""Geometric facial-action-unit estimator (docs/spec/au.md §2) on MediaPipe's 478 points.

This is a *landmark-geometry* estimator, not OpenFace and not a learned AU detector: its scores say how far
FACS-style distances on the (pose-normalised) MediaPipe mesh lie from a frozen neutral-face mean, in
neutral-SD units.  Its AU F1 is therefore not comparable with the MPENet paper's OpenFace numbers.

Pipeline for each face (landmarks [478,3] in pixels, MediaPipe's z scaled like x):

1. 3-D similarity (Umeyama, no reflection) fitted on 26 rigid anchors (forehead, nose bridge, eye corners,
   temples) onto MediaPipe's canonical face model in image convention (x, −y, −z); applied to all points.
2. IOD = 2-D distance between the eye centres (midpoints 33–133 and 263–362) in the aligned frame; every
   measure M01..M26 is an aligned-y (or 2-D) distance divided by IOD.
3. z_k = (M_k − neutral mean_k) / neutral SD_k (frozen constants, ``au_geometric.json``);
   Score_AU = mean over the AU's terms of sign·z_k, divided by c_AU (the SD of that mean on neutral faces).
4. An AU is present when Score > 1 (``threshold``).  The 6 AUs validated on real faces
   (AU05, AU06, AU12, AU20, AU25, AU26) are ``SUBSET``; the others are reported as secondary.

Expects landmarks from ``fsrbench.analysis`` MediaPipe mesh (refine_landmarks=True → 478 points incl. irises).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fsrbench.api.face import AUEstimator

DATA_FILE = Path(__file__).with_name("au_geometric.json")


@lru_cache(maxsize=1)
def constants() -> dict[str, Any]:
    """The frozen constants (anchors, measures with neutral mean/SD, AU terms and c_AU, threshold, subset)."""
    with open(DATA_FILE, encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def constants_sha256() -> str:
    return hashlib.sha256(DATA_FILE.read_bytes()).hexdigest()


def canonical_mesh() -> np.ndarray:
    """MediaPipe's canonical face (468 vertices) in image convention (x right, y down, z away from viewer)."""
    v = np.asarray(constants()["canonical_face_model"]["vertices"], dtype=np.float64)
    return v * np.array([1.0, -1.0, -1.0])


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising Σ‖dst − (s·R·src + t)‖² (Umeyama 1991), reflections excluded."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    s_fix = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s_fix[-1, -1] = -1.0
    rot = u @ s_fix @ vt
    var_s = (xs ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ s_fix) / var_s) if var_s > 0 else float("nan")
    t = mu_d - scale * rot @ mu_s
    return scale, rot, t


def align(points: np.ndarray) -> np.ndarray:
    """Align one face's [478,3] points to the canonical face on the anchors; returns aligned [478,3]."""
    c = constants()
    anchors = np.asarray(c["anchors"])
    ref = canonical_mesh()
    s, r, t = umeyama(points[anchors], ref[anchors])
    return (s * (r @ points.T)).T + t


def _m(y: np.ndarray, idx: tuple[int, ...]) -> float:
    return float(np.mean(y[list(idx)]))


def measures(points: np.ndarray) -> dict[str, float]:
    """Measures M01..M26 (IOD units) of one face's [478,3] landmarks (pixels). NaN if the face is degenerate."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (478, 3) or not np.all(np.isfinite(p)):
        return {k: float("nan") for k in constants()["measures"]}
    a = align(p)
    eye_l = (a[33, :2] + a[133, :2]) / 2
    eye_r = (a[263, :2] + a[362, :2]) / 2
    iod = float(np.linalg.norm(eye_r - eye_l))
    if not iod > 0:
        return {k: float("nan") for k in constants()["measures"]}
    x, y = a[:, 0] / iod, a[:, 1] / iod
    e = _m(y, (33, 133, 263, 362))
    inner_brow = _m(y, (107, 55, 336, 285))
    out = {
        "M01": e - inner_brow,
        "M02": e - _m(y, (105, 52, 334, 282)),
        "M04a": _m(y, (133, 362)) - inner_brow,
        "M04b": 0.5 * ((x[336] - x[107]) + (x[285] - x[55])),
        "M04c": _m(y, (159, 386)) - _m(y, (52, 282)),
        "M05": _m(y, (468, 473)) - _m(y, (159, 386)),
        "M06": _m(y, (117, 346)) - e,
        "M07": _m(y, (145, 374)) - e,
        "M09a": _m(y, (64, 294)) - _m(y, (133, 362)),
        "M09b": y[2] - y[168],
        "M10": y[0] - y[2],
        "M12a": 0.5 * (y[13] + y[14]) - _m(y, (61, 291)),
        "M12b": float(np.hypot(x[291] - x[61], y[291] - y[61])),
        "M17a": (y[17] - y[2]) - (y[14] - y[13]),
        "M17b": y[152] - y[18],
        "M23": (y[13] - y[0]) + (y[17] - y[14]),
        "M25": y[14] - y[13],
        "M26": y[17] - y[2],
    }
    return {k: float(v) for k, v in out.items()}


class GeometricAU(AUEstimator):
    """Estimator A: 15 AU scores (neutral-SD units) from MediaPipe 478-point landmarks; present = Score > 1."""

    name: ClassVar[str] = "geometric"
    aus: ClassVar[tuple[str, ...]] = tuple(constants()["aus"])
    subset: ClassVar[tuple[str, ...]] = tuple(constants()["subset"])
    description: ClassVar[str] = ("landmark-geometry AU estimator (MediaPipe mesh, frozen neutral statistics); "
                                  "not OpenFace")

    def __init__(self, threshold: float | None = None, **options: Any) -> None:
        c = constants()
        self.threshold = float(c["threshold"] if threshold is None else threshold)
        self.options = dict(options)
        self.id = f"geometric-au-v{c['version']}-{constants_sha256()[:8]}"
        if threshold is not None and self.threshold != float(c["threshold"]):
            self.id += f"-thr{self.threshold:g}"

    def measures(self, landmarks478: np.ndarray) -> np.ndarray:
        """[N, n_measures] measure values (IOD units), columns in ``measure_names()`` order."""
        names = self.measure_names()
        lm = np.asarray(landmarks478, dtype=np.float64).reshape(-1, 478, 3)
        return np.array([[m[k] for k in names] for m in map(measures, lm)], dtype=np.float64).reshape(-1, len(names))

    @staticmethod
    def measure_names() -> tuple[str, ...]:
        return tuple(constants()["measures"])

    def scores_from_measures(self, m: np.ndarray) -> np.ndarray:
        c = constants()
        names = self.measure_names()
        mean = np.array([c["measures"][k]["mean"] for k in names])
        sd = np.array([c["measures"][k]["sd"] for k in names])
        z = (np.asarray(m, dtype=np.float64) - mean) / sd
        col = {k: i for i, k in enumerate(names)}
        out = np.empty((z.shape[0], len(self.aus)))
        for j, au in enumerate(self.aus):
            spec = c["aus"][au]
            terms = np.stack([sign * z[:, col[k]] for k, sign in spec["terms"]], axis=1)
            out[:, j] = terms.mean(axis=1) / float(spec["c"])
        return out

    def estimate(self, landmarks478: np.ndarray) -> np.ndarray:
        """AU scores [N, 15] (neutral-SD units; NaN rows for faces without valid landmarks)."""
        return self.scores_from_measures(self.measures(landmarks478))

    def present(self, scores: np.ndarray) -> np.ndarray:
        """Boolean presence [N, 15]: Score > threshold (1.0). NaN scores are not present (mask failures yourself)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(scores, dtype=np.float64) > self.threshold
