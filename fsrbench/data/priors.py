"""Training/test priors of a dataset, generated once and cached on disk (docs/spec/data.md §2).

What is here:

* landmark flips for horizontal-flip augmentation: :data:`FLIP_PERM_68` (iBUG 68-point scheme) and
  :func:`flip_perm_478` (MediaPipe Face Mesh, 468 mesh + 10 iris points), :func:`flip_landmarks`,
  :data:`FLIP_PARSING` (label swap of a flipped parsing map);
* :func:`render_heatmaps` — Gaussian landmark heatmaps (DIC's rule: landmarks scaled to the grid,
  ``exp(-d²/2σ²)`` at integer grid positions);
* :func:`parsing_from_landmarks68` — a 10-label parsing map drawn from 68 landmarks (0 bg, 1 skin,
  2 l_brow, 3 r_brow, 4 l_eye, 5 r_eye, 6 nose, 7 u_lip, 8 inner_mouth, 9 l_lip; "l_" = image left).
  **It replaces BiSeNet** (no offline face-parsing weights exist): regions are polygons through the
  landmarks, the forehead is a band above the brows, hair/ears/neck/glasses are background. It is a
  geometric approximation, not a segmentation; W-Net's skin target (:func:`skin_map`) inherits that;
* :class:`DatasetPriors` — per-dataset cache of "landmarks68", "landmarks478_hr", "landmarks478_lr"
  (per scale), "parsing", "skin", "au": one ``.npz`` per (prior, source model id) under
  ``<cache>/priors/<dataset>-<fingerprint hash>/``; a second request loads it instead of recomputing.

The 478-point permutation was derived from the installed ``mediapipe`` package (0.10.21), whose wheel ships
no canonical-face geometry file: the Face Mesh model itself was run on 17 real faces and on their mirror
images; the partner of point i is the point nearest to the mirrored position of point i in the flipped
image (Hungarian matching; per-point mode over the faces, unanimous for 458 of 478 points). It is an
involution; it maps the package's FACEMESH_LEFT_EYE/EYEBROW/IRIS connection sets exactly onto the RIGHT
ones and 2,544 of the 2,556 FACEMESH_TESSELATION edges onto edges (the tessellation itself is not exactly
symmetric near the nostrils); and its 468 mesh entries equal, point for point, the exact mirror symmetry of
MediaPipe's canonical face model (``canonical_face_model.obj``, vendored in
``fsrbench/analysis/au_geometric.json``; every vertex has an exact mirror partner). Iris: 468<->473
(centres), 469<->476, 470<->475, 471<->474, 472<->477. tests/datasets/test_data_priors.py re-checks all of this.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from fsrbench.analysis import get_au, get_landmarks
from fsrbench.api import DataError, Unavailable
from fsrbench.errors import PluginLoadError, RegistryError
from fsrbench.cache import Cache, default_cache_dir, image_key
from fsrbench.imageio import make_lr, pil_resize
from fsrbench.results import atomic_file

# iBUG 68 (0-based): jaw 0-16, brows 17-21 | 22-26, nose 27-35, eyes 36-41 | 42-47, mouth 48-59, inner 60-67
FLIP_PERM_68: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nostrils
    45, 44, 43, 42, 47, 46,  # eye 36-41 -> 42-47
    39, 38, 37, 36, 41, 40,  # eye 42-47 -> 36-41
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer mouth
    64, 63, 62, 61, 60, 67, 66, 65,  # inner mouth
)

_FLIP_478 = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 250, 251, 252, 253, 254, 255, 256,
    257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277,
    278, 279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 298,
    299, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319,
    320, 321, 322, 323, 94, 324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340,
    341, 342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361,
    362, 363, 364, 365, 366, 367, 368, 369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380,
    381, 382, 383, 384, 385, 386, 387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399,
    175, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195,
    419, 197, 420, 199, 200, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436,
    437, 438, 439, 440, 441, 442, 443, 444, 445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457,
    458, 459, 460, 461, 462, 463, 464, 465, 466, 467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
    87, 88, 89, 90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132,
    133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 153, 154, 155,
    156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171, 172, 173, 174, 176, 177, 178, 179,
    180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 196, 198, 201, 202, 203, 204,
    205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225,
    226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246,
    247, 473, 476, 475, 474, 477, 468, 471, 470, 469, 472
)

PARSING_LABELS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "inner_mouth", "l_lip")
FLIP_PARSING: tuple[int, ...] = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9)  # label -> label after a horizontal flip


def flip_perm_478() -> np.ndarray:
    """Index permutation of MediaPipe's 478 points under a horizontal flip (an involution; see module doc)."""
    return np.asarray(_FLIP_478, dtype=np.int64)


def flip_landmarks(points: Any, width: int, perm: Sequence[int] | np.ndarray | None = None,
                   continuous: bool | None = None) -> Any:
    """Landmarks [..., K, 2|3] of an image of ``width`` px after ``img[:, ::-1]``, re-indexed with ``perm``
    (default chosen from K: 68 or 478).

    x convention: ``continuous=False`` -> ``x' = width - 1 - x`` (pixel-index coordinates: dlib, the
    annotations, :func:`render_heatmaps`); ``continuous=True`` -> ``x' = width - x`` (MediaPipe's
    normalised x × width, where pixel i spans [i, i+1)). Default: continuous for 478 points, pixel-index
    otherwise. Works on NumPy arrays and torch tensors."""
    k = points.shape[-2]
    if perm is None:
        if k == 68:
            perm = FLIP_PERM_68
        elif k == 478:
            perm = flip_perm_478()
        else:
            raise ValueError(f"no flip permutation for {k} landmarks; pass perm=")
    if continuous is None:
        continuous = k == 478
    idx = list(int(i) for i in perm)
    out = points[..., idx, :].clone() if hasattr(points, "clone") else np.array(points[..., idx, :], copy=True)
    out[..., 0] = (width if continuous else width - 1) - out[..., 0]
    return out


def flip_parsing(labels: np.ndarray) -> np.ndarray:
    """Mirror a parsing label map [..., H, W] and swap left/right labels."""
    return np.asarray(FLIP_PARSING, dtype=labels.dtype)[labels[..., ::-1]]


def render_heatmaps(landmarks: Any, size: int, sigma: float = 1.0, hr_size: int = 128) -> Any:
    """Gaussian heatmaps Tensor[B,K,size,size] from landmarks [B,K,2] (x, y in ``hr_size`` pixels).

    Landmarks are scaled by ``size / hr_size`` and each map is ``exp(-((x-px)² + (y-py)²) / (2σ²))`` at the
    integer grid positions — DIC's ``generate_gt`` (σ=1 on a 32×32 grid for 128² HR). Non-finite
    landmarks give all-zero maps. Input may be a NumPy array or a tensor; the output is float32 on the
    input's device."""
    import torch

    lm = landmarks if isinstance(landmarks, torch.Tensor) else torch.as_tensor(np.asarray(landmarks))
    if lm.ndim != 3 or lm.shape[-1] < 2:
        raise ValueError(f"landmarks must be [B,K,2], got {tuple(lm.shape)}")
    lm = lm[..., :2].float() * (size / float(hr_size))
    valid = torch.isfinite(lm).all(-1)  # [B,K]
    lm = torch.nan_to_num(lm, nan=-1e4, posinf=-1e4, neginf=-1e4)
    grid = torch.arange(size, dtype=torch.float32, device=lm.device)
    inv = -1.0 / (2.0 * sigma * sigma)
    gx = torch.exp((grid.view(1, 1, size) - lm[..., 0:1]) ** 2 * inv)  # [B,K,S] (separable Gaussian)
    gy = torch.exp((grid.view(1, 1, size) - lm[..., 1:2]) ** 2 * inv) * valid.unsqueeze(-1).float()
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # [B,K,S(y),S(x)]


# ------------------------------------------------------------------------------------------------
# parsing maps from 68 landmarks (replaces BiSeNet; see module docstring)
# ------------------------------------------------------------------------------------------------
PARSING_DEFAULTS = {"forehead": 0.6, "brow_thickness": 0.18, "nose_top_width": 0.5}


def _fill(label_map: np.ndarray, poly: np.ndarray, value: int) -> None:
    from skimage.draw import polygon

    rr, cc = polygon(poly[:, 1], poly[:, 0], shape=label_map.shape)
    label_map[rr, cc] = value


def parsing_from_landmarks68(landmarks: np.ndarray, size: int = 128, hr_size: int = 128,
                             forehead: float = PARSING_DEFAULTS["forehead"],
                             brow_thickness: float = PARSING_DEFAULTS["brow_thickness"],
                             nose_top_width: float = PARSING_DEFAULTS["nose_top_width"]) -> np.ndarray:
    """uint8 label map [size,size] drawn from 68 landmarks (x, y in ``hr_size`` px); all 0 if not finite.

    Geometry ([CHOICE]s, keys of ``parsing_options``): skin = polygon of the jaw line closed by the brow
    points moved ``forehead`` × |brow centre − nose tip| up the face axis (chin→brow centre); brows =
    band of ``brow_thickness`` × inter-ocular distance centred on the brow points; nose = polygon
    27(±``nose_top_width``/2 × nostril width)–31…35; eyes 36–41 / 42–47; upper lip 48–54 + 64–60; lower
    lip 54–59,48 + 60,67–64; inner mouth 60–67. Painted in that order (later labels win)."""
    p = np.asarray(landmarks, dtype=np.float64)[:, :2] * (size / float(hr_size))
    out = np.zeros((size, size), dtype=np.uint8)
    if p.shape[0] != 68 or not np.isfinite(p).all():
        return out
    brow_c = p[17:27].mean(0)
    axis = brow_c - p[8]
    n = np.linalg.norm(axis)
    up = axis / n if n > 0 else np.array([0.0, -1.0])
    lateral = np.array([-up[1], up[0]])
    lift = forehead * np.linalg.norm(brow_c - p[30])
    top = p[26:16:-1] + up * lift
    _fill(out, np.vstack([p[0:17], top]), 1)
    w = np.linalg.norm(p[35] - p[31]) * nose_top_width / 2.0
    a, b = p[27] - lateral * w, p[27] + lateral * w
    left_first = a[0] <= b[0]
    _fill(out, np.vstack([a if left_first else b, p[31:36], b if left_first else a]), 6)
    iod = np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0))
    t = brow_thickness * iod / 2.0
    for sl, lab in ((slice(17, 22), 2), (slice(22, 27), 3)):
        br = p[sl]
        _fill(out, np.vstack([br + up * t, (br - up * t)[::-1]]), lab)
    _fill(out, p[36:42], 4)
    _fill(out, p[42:48], 5)
    _fill(out, np.vstack([p[48:55], p[[64, 63, 62, 61, 60]]]), 7)
    _fill(out, np.vstack([p[54:60], p[[48, 60, 67, 66, 65, 64]]]), 9)
    _fill(out, p[60:68], 8)
    return out


def skin_map(parsing: np.ndarray) -> np.ndarray:
    """W-Net's binary parsing target: 1 on skin (label 1), 0 on facial features and background."""
    return (np.asarray(parsing) == 1).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# cached per-dataset priors
# ------------------------------------------------------------------------------------------------
PRIOR_NAMES = ("landmarks68", "landmarks478_hr", "landmarks478_lr", "parsing", "skin", "au")
#: priors computed image by image with a face model (the expensive ones); the others derive from them
BASE_PRIORS = ("landmarks68", "landmarks478_hr", "landmarks478_lr")
BASE_OF = {"parsing": ("landmarks68",), "skin": ("landmarks68",), "au": ("landmarks478_hr",)}
#: (cache folder, prior) whose cached-source fallback was announced on stderr in this process
_FALLBACK_NOTED: set[tuple[str, str]] = set()
#: images per partial-result file of a base prior (the unit of resuming and of sharing work between processes)
CHUNK = 64


def _default_root() -> Path:
    return Path(default_cache_dir()) / "priors"


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in s)


class PriorArray:
    """One cached prior of a dataset: ``ids``, ``values`` [N,...], ``ok`` [N] and ``reasons`` [N]."""

    def __init__(self, ids: Sequence[str], values: np.ndarray, ok: np.ndarray, reasons: Sequence[str],
                 source: str, path: Path | None = None) -> None:
        self.ids = list(ids)
        self.values = values
        self.ok = np.asarray(ok, dtype=bool)
        self.reasons = list(reasons)
        self.source = source
        self.path = path
        self._pos = {i: k for k, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(values, ok) rows for ``ids`` (KeyError for an id not in the dataset)."""
        idx = [self._pos[i] for i in ids]
        return self.values[idx], self.ok[idx]


class DatasetPriors:
    """Generate-once, cache-on-disk priors of one dataset (see module docstring).

    ``models`` maps "dlib68" / "mediapipe478" / "au" to model objects (default: looked up with
    :func:`fsrbench.analysis.get_landmarks` / :func:`~fsrbench.analysis.get_au` when first needed). ``landmarks68_source``:
    ``auto`` (annotation when the samples carry ``meta["landmarks68"]``, else dlib), ``annotation`` or
    ``dlib68``. ``computed`` counts freshly computed priors (tests use it to prove reuse).
    """

    def __init__(self, dataset: Any, root: str | Path | None = None, models: dict[str, Any] | None = None,
                 landmarks68_source: str = "auto", parsing_options: dict[str, float] | None = None,
                 progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> None:
        self.dataset = dataset
        self.root = Path(root) if root is not None else _default_root()
        self.models = dict(models or {})
        if landmarks68_source not in ("auto", "annotation", "dlib68"):
            raise ValueError(f"landmarks68_source={landmarks68_source!r}; choose auto, annotation or dlib68")
        self.landmarks68_source = landmarks68_source
        self.parsing_options = {**PARSING_DEFAULTS, **(parsing_options or {})}
        self.progress = progress or (lambda x: x)
        self.computed: list[str] = []
        self.chunk = int(CHUNK)  # images per partial-result file
        self._mem: dict[str, PriorArray] = {}
        fp = dataset.fingerprint()
        digest = hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.dir = self.root / f"{_safe(str(fp.get('name', dataset.name)))}-{digest}"

    # -- models -----------------------------------------------------------------------------------
    def _model(self, key: str) -> Any:
        if key not in self.models:
            if key == "au":
                self.models[key] = get_au()
            elif key == "mediapipe478_lr":
                self.models[key] = self.models.get("mediapipe478_lr") or lr_landmark_model()
            else:
                self.models[key] = get_landmarks(key)
        return self.models[key]

    # -- storage ----------------------------------------------------------------------------------
    def _file(self, name: str, source: str) -> Path:
        return self.dir / f"{name}--{_safe(source)}.npz"

    def _load(self, name: str, source: str) -> PriorArray | None:
        path = self._file(name, source)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = [str(s) for s in z["ids"]]
                arr = PriorArray(ids, z["values"], z["ok"], [str(s) for s in z["reasons"]], source, path)
        except (OSError, ValueError, KeyError):
            return None  # corrupt: recompute
        return arr if ids == self.dataset.ids() else None

    def _save(self, name: str, arr: PriorArray) -> None:
        path = self._file(name, arr.source)
        with atomic_file(path, fsync=False) as fh:
            np.savez_compressed(fh, ids=np.array(arr.ids, dtype=str), values=arr.values, ok=arr.ok,
                                reasons=np.array(arr.reasons, dtype=str))
        arr.path = path

    # -- public -----------------------------------------------------------------------------------
    def get(self, name: str, scale: int | None = None) -> PriorArray:
        """The prior ``name`` for every id of the dataset (computed and cached on first use)."""
        if name not in PRIOR_NAMES:
            raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIOR_NAMES)}")
        key = self.key(name, scale)
        if key in self._mem:
            return self._mem[key]
        source = self._source(name)
        arr = self._load(key, source)
        if arr is None:
            arr = self._compute(name, source, scale)
            self._save(key, arr)
            if name in BASE_PRIORS:
                self._clear_chunks(name, scale)
            self.computed.append(key)
        self._mem[key] = arr
        return arr

    @staticmethod
    def key(name: str, scale: int | None = None) -> str:
        """The cache key of a prior: its name, with the scale for the LR-derived ``landmarks478_lr``."""
        if name not in PRIOR_NAMES:
            raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIOR_NAMES)}")
        if name == "landmarks478_lr":
            if not scale:
                raise ValueError("landmarks478_lr needs the scale (LR = PIL-bicubic HR/scale, upsampled to HR)")
            return f"{name}-x{int(scale)}"
        return name

    def is_cached(self, name: str, scale: int | None = None) -> bool:
        """True when ``get(name, scale)`` would load the prior instead of computing anything."""
        key = self.key(name, scale)
        return key in self._mem or self._file(key, self._source(name)).is_file()

    def pending_base(self, names: Iterable[str], scale: int | None = None) -> list[str]:
        """The per-image priors (:data:`BASE_PRIORS`, one face-model run per image) that ``names`` need and that
        are not cached yet; the other priors are derived from them in milliseconds."""
        out: list[str] = []
        for n in names:
            if self.is_cached(n, scale):
                continue
            for b in BASE_OF.get(n, (n,)):
                if b not in out and not self.is_cached(b, scale):
                    out.append(b)
        return out

    def n_chunks(self) -> int:
        return -(-len(self.dataset.ids()) // self.chunk)

    def _chunk_dir(self, name: str, scale: int | None) -> Path:
        return self.dir / ".partial" / f"{self.key(name, scale)}--{_safe(self._source(name))}--c{self.chunk}"

    def missing_chunks(self, name: str, scale: int | None = None) -> list[int]:
        """Chunks (of ``self.chunk`` ids, in id order) of a base prior without a stored partial result."""
        d = self._chunk_dir(name, scale)
        return [c for c in range(self.n_chunks()) if not (d / f"{c:06d}.npz").is_file()]

    def compute_chunks(self, name: str, scale: int | None, chunks: Iterable[int],
                       on_image: Callable[[], None] | None = None) -> int:
        """Compute and store the given chunks of the base prior ``name`` (skipping stored ones); returns the
        number of images processed.  Chunks are independent files, so an interrupted computation resumes
        where it stopped, and several processes can share the work (disjoint chunk sets)."""
        if name not in BASE_PRIORS:
            raise ValueError(f"{name!r} is derived from {BASE_OF.get(name)}; compute those")
        ids = self.dataset.ids()
        d = self._chunk_dir(name, scale)
        fn, k, dim = self._row_fn(name, scale)
        done = 0
        for c in chunks:
            path = d / f"{c:06d}.npz"
            if path.is_file():
                continue
            part = ids[c * self.chunk:(c + 1) * self.chunk]
            vals = np.full((len(part), k, dim), np.nan, dtype=np.float32)
            ok = np.zeros(len(part), dtype=bool)
            reasons = [""] * len(part)
            for n, sid in enumerate(part):
                try:
                    pts, why = fn(self.dataset.load(sid))
                except DataError as exc:
                    pts, why = None, str(exc)
                if pts is None:
                    reasons[n] = why
                else:
                    pts = np.asarray(pts, dtype=np.float32)
                    vals[n, :, : min(dim, pts.shape[1])] = pts[:, :dim]
                    ok[n] = True
                done += 1
                if on_image is not None:
                    on_image()
            _atomic_npz(path, ids=np.array(part, dtype=str), values=vals, ok=ok, reasons=np.array(reasons, dtype=str))
        return done

    def _merge(self, name: str, source: str, scale: int | None) -> PriorArray:
        """The base prior from its chunk files (computing missing chunks here, with ``self.progress``)."""
        ids = self.dataset.ids()
        missing = self.missing_chunks(name, scale)
        if missing:
            bar = self.progress(range(sum(min(self.chunk, len(ids) - c * self.chunk) for c in missing)))
            ticks = iter(bar)
            self.compute_chunks(name, scale, missing, on_image=lambda: next(ticks, None))
            for _ in ticks:  # let a progress bar finish
                pass
        d = self._chunk_dir(name, scale)
        parts = []
        for c in range(self.n_chunks()):
            with np.load(d / f"{c:06d}.npz", allow_pickle=False) as z:
                if [str(i) for i in z["ids"]] != ids[c * self.chunk:(c + 1) * self.chunk]:
                    raise ValueError(f"{d}: chunk {c} was computed for other ids; delete {d} and recompute")
                parts.append((z["values"], z["ok"], [str(r) for r in z["reasons"]]))
        _, k, dim = self._row_fn(name, scale, describe_only=True)
        values = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, k, dim), np.float32)
        ok = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
        reasons = [r for p in parts for r in p[2]]
        return PriorArray(ids, values, ok, reasons, source)

    def _clear_chunks(self, name: str, scale: int | None) -> None:
        import shutil

        shutil.rmtree(self._chunk_dir(name, scale), ignore_errors=True)

    def batch(self, ids: Sequence[str], names: Iterable[str], scale: int | None = None) -> dict[str, np.ndarray]:
        """{name: values for ``ids``} (for TrainBatch.priors / Batch.priors); rows that failed are NaN / 0."""
        return {n: self.get(n, scale).take(ids)[0] for n in names}

    def _source(self, name: str) -> str:
        """The id of what computes prior ``name`` (its face model, with options): part of the cache file name.

        When the face model cannot be loaded here (its package is not installed, e.g. on a GPU training node)
        but this dataset's cache already holds ``name`` from exactly one source, that source is used, so
        priors computed on another machine (``fsrbench data priors``, copied into the cache) serve training
        without the face models."""
        try:
            return self._model_source(name)
        except (ImportError, OSError, PluginLoadError, RegistryError, Unavailable) as exc:
            found = self._cached_sources(name)
            if len(found) != 1:
                if found:
                    raise DataError(f"prior {name!r} of {self.dataset.display_name}: its face model cannot be "
                                    f"loaded here ({exc}) and the cache {self.dir} holds it from several "
                                    f"sources ({', '.join(found)}); keep one, or install the face model") from exc
                raise
            if (str(self.dir), name) not in _FALLBACK_NOTED:  # once per process, not per DatasetPriors
                _FALLBACK_NOTED.add((str(self.dir), name))
                print(f"fsrbench: prior {name!r} of {self.dataset.display_name}: its face model cannot be loaded "
                      f"here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); using the "
                      f"cached values from {found[0]} in {self.dir}", file=sys.stderr)
            return found[0]

    def _cached_sources(self, name: str) -> list[str]:
        """The sources of the cached files of prior ``name`` in this dataset's cache folder (any scale)."""
        if not self.dir.is_dir():
            return []
        stems = [f.name[: -len(".npz")] for f in self.dir.iterdir() if f.name.endswith(".npz")]
        out = set()
        for stem in stems:
            key, sep, source = stem.partition("--")
            if sep and (key == name or (name == "landmarks478_lr" and key.startswith(f"{name}-x"))):
                out.add(source)
        return sorted(out)

    def _model_source(self, name: str) -> str:
        if name == "landmarks68":
            return self._lm68_source_id()
        if name == "landmarks478_hr":
            return str(self._model("mediapipe478").id)
        if name == "landmarks478_lr":  # LR-only rule, shared with the test-time prior
            return f"{self._model('mediapipe478_lr').id}-lr{LR_LANDMARK_SIZE}-conf{LR_DETECTION_CONFIDENCE}"
        if name in ("parsing", "skin"):
            opts = ",".join(f"{k}={v}" for k, v in sorted(self.parsing_options.items()))
            return f"from-{self._lm68_source_id()}-{hashlib.sha256(opts.encode()).hexdigest()[:8]}"
        return f"{self._model('au').id}-on-{self._model('mediapipe478').id}"

    def _lm68_source_id(self) -> str:
        if getattr(self, "_lm68_id", None) is None:
            mode = self.landmarks68_source
            if mode == "auto":
                ids = self.dataset.ids()
                has = bool(ids) and "landmarks68" in self.dataset.load(ids[0]).meta
                mode = "annotation" if has else "dlib68"
            self._lm68_id = "annotation" if mode == "annotation" else str(self._model("dlib68").id)
        return self._lm68_id

    def _compute(self, name: str, source: str, scale: int | None) -> PriorArray:
        ids = self.dataset.ids()
        if name in BASE_PRIORS:
            return self._merge(name, source, scale)
        if name in ("parsing", "skin"):
            lm = self.get("landmarks68")
            maps = np.stack([parsing_from_landmarks68(v, self.dataset.hr_size, self.dataset.hr_size,
                                                      **self.parsing_options) for v in lm.values]) \
                if len(lm) else np.zeros((0, self.dataset.hr_size, self.dataset.hr_size), np.uint8)
            if name == "skin":
                maps = skin_map(maps)
            return PriorArray(ids, maps, lm.ok.copy(), list(lm.reasons), source)
        # au
        lm = self.get("landmarks478_hr")
        au = self._model("au")
        n_au = len(getattr(au, "aus", ())) or 1
        vals = np.full((len(ids), n_au), np.nan, dtype=np.float32)
        ok = lm.ok.copy()
        if ok.any():
            scores = np.asarray(au.estimate(lm.values[ok]))
            vals = np.full((len(ids), scores.shape[1]), np.nan, dtype=np.float32)
            vals[ok] = np.asarray(au.present(scores), dtype=np.float32)
        return PriorArray(ids, vals, ok, list(lm.reasons), source)

    def _row_fn(self, name: str, scale: int | None,
                describe_only: bool = False) -> tuple[Callable[[Any], tuple[Any, str]] | None, int, int]:
        """(sample -> (points or None, reason), K, dim) of a base prior."""
        k, dim = (68, 2) if name == "landmarks68" else (478, 3)
        if describe_only:
            return None, k, dim

        def points(r: Any) -> tuple[Any, str]:
            return (r.points, "") if r.ok and r.points is not None else (None, r.reason or "no landmarks")

        if name == "landmarks68":
            source = self._source(name)
            if source == "annotation":
                def from_meta(s: Any) -> tuple[Any, str]:
                    v = s.meta.get("landmarks68")
                    return (np.asarray(v), "") if v is not None else (None, "no 68-point annotation")
                return from_meta, k, dim
            model = self._model("dlib68")
            return (lambda s: points(model.detect(s.hr))), k, dim
        if name == "landmarks478_hr":
            model = self._model("mediapipe478")
            return (lambda s: points(model.detect(s.hr))), k, dim
        model = self._model("mediapipe478_lr")
        sc = int(scale or 0)
        return (lambda s: landmarks478_from_lr(make_lr(s.hr, sc), model, s.hr.shape[0])), k, dim


def _atomic_npz(path: Path, **arrays: Any) -> None:
    with atomic_file(path, fsync=False) as fh:
        np.savez_compressed(fh, **arrays)


# ------------------------------------------------------------------------------------------------
# LR landmarks: the same function for training priors and for the test-time prior (no HR information)
# ------------------------------------------------------------------------------------------------
LR_LANDMARK_SIZE = 256  # docs/spec/data.md §3 [CHOICE]: MediaPipe on the bicubic-upsampled LR at 256x256
LR_DETECTION_CONFIDENCE = 0.1  # docs/spec/data.md §3 [CHOICE]


def lr_landmark_model() -> Any:
    """MediaPipe Face Mesh configured for LR inputs (detector threshold 0.1)."""
    return get_landmarks("mediapipe478", min_detection_confidence=LR_DETECTION_CONFIDENCE)


def landmarks478_from_lr(lr: np.ndarray, model: Any = None, hr_size: int = 128) -> tuple[np.ndarray | None, str]:
    """478 MediaPipe points of an LR face, from the LR image alone (docs/spec/data.md §3).

    The LR image is PIL-bicubic upsampled to 256x256 and MediaPipe's detector path runs on it; points are
    returned in pixels of the ``hr_size`` frame (x, y, z scaled alike) as float32 [478,3], or
    ``(None, reason)`` when no face is found (AffectSRNet then uses its mean-shape fallback and flags it).
    """
    model = model or lr_landmark_model()
    res = model.detect(pil_resize(lr, LR_LANDMARK_SIZE))
    if not res.ok or res.points is None:
        return None, res.reason or "no landmarks"
    return (np.asarray(res.points, dtype=np.float64) * (hr_size / LR_LANDMARK_SIZE)).astype(np.float32), ""


def test_prior(name: str, *, hr: np.ndarray, lr: np.ndarray, upsampled: np.ndarray, cache: Any = None,
               device: Any = "cpu") -> Any:
    """Test-time priors the runner supplies to methods that declare them (``Method.priors``).

    Only LR-derived priors exist at test time: ``landmarks478_lr`` -> float32 tensor [B,478,3] (NaN rows
    where MediaPipe finds no face). Results are cached by LR content and model id.
    """
    import torch

    if name != "landmarks478_lr":
        raise Unavailable(f"no test-time provider for prior {name!r} (available: landmarks478_lr)")
    model = lr_landmark_model()
    cache = cache if cache is not None else Cache(None)
    mid = f"{model.id}-lr{LR_LANDMARK_SIZE}-conf{LR_DETECTION_CONFIDENCE}"
    hr_size = int(hr.shape[1]) if hr is not None else int(upsampled.shape[1])
    out = np.full((len(lr), 478, 3), np.nan, dtype=np.float32)
    for i, img in enumerate(lr):
        key = Cache.make_key(image_key(img), {"hr_size": hr_size})
        hit = cache.get(mid, key)
        if hit is None:
            pts, why = landmarks478_from_lr(img, model, hr_size)
            hit = {"points": pts if pts is not None else np.full((478, 3), np.nan, np.float32), "reason": why}
            cache.put(mid, key, hit)
        out[i] = hit["points"]
    return torch.from_numpy(out).to(device)


# ------------------------------------------------------------------------------------------------
# precomputation (``fsrbench data priors``): resumable, parallel over processes
# ------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_start(dataset: Any, root: str, chunk: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["priors"] = DatasetPriors(dataset, root=root)
    _WORKER["priors"].chunk = chunk


def _worker_chunk(name: str, scale: int | None, chunk: int) -> int:
    return _WORKER["priors"].compute_chunks(name, scale, [chunk])


def precompute(dataset: Any, names: Sequence[str], scale: int | None = None, *, workers: int = 1,
               root: str | Path | None = None, progress: bool = True) -> dict[str, PriorArray]:
    """Compute and cache the priors ``names`` of ``dataset`` (what ``fsrbench data priors`` runs).

    The per-image face-model work (:data:`BASE_PRIORS`) is done in chunks of :data:`CHUNK` images, each
    stored when done — an interrupted run resumes from the finished chunks — by ``workers`` processes (a
    spawned pool; each loads its face models once).  The chunks are then merged into the cache file that
    training and evaluation read, and the derived priors (parsing, skin, AUs) are computed from them.
    Results do not depend on ``workers``."""
    dp = DatasetPriors(dataset, root=root)
    pending = dp.pending_base(names, scale)
    tasks = [(b, c) for b in pending for c in dp.missing_chunks(b, scale)]
    n_ids = len(dataset.ids())
    sizes = {c: min(dp.chunk, n_ids - c * dp.chunk) for _, c in tasks}
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=sum(sizes[c] for _, c in tasks), desc=f"priors {','.join(pending)}", unit="img",
                   dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for b, c in tasks:
                dp.compute_chunks(b, scale, [c], on_image=(bar.update if bar is not None else None))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")  # face-model runtimes do not survive fork
            with ProcessPoolExecutor(int(workers), mp_context=ctx, initializer=_worker_start,
                                     initargs=(dataset, str(dp.root), dp.chunk)) as pool:
                futures = [pool.submit(_worker_chunk, b, scale, c) for b, c in tasks]
                for f in as_completed(futures):
                    n = f.result()
                    if bar is not None:
                        bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    return {n: dp.get(n, scale) for n in names}
