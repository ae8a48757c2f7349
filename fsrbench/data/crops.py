"""HR face crops: the rules that turn a dataset image into the 128×128 HR image of a protocol.

All crops end with the canonical resizer :func:`fsrbench.imageio.pil_resize` (PIL bicubic on uint8).

* :func:`dic_bbox_crop` — DIC's rule, read from ``code/data/HRLandmarkDataset.py`` of the official DIC
  repository: ``hr[ymin:ymax, xmin:xmax]`` with the integer box ``[xmin, ymin, xmax, ymax]`` from DIC's
  annotation pickle, then PIL bicubic to 128×128; landmarks map as ``(p - (xmin, ymin)) * 128 / (w, h)``.
  DIC does not publish how it made the boxes, so this rule needs DIC's annotation files.
* :func:`points_box` + :func:`crop_box` — fsrbench's documented fallback when only landmarks exist
  (CelebA's 5 aligned points, Helen's 194 points): a square box around the points, see the functions.
* :func:`detect_crop` — for plain folders (``folder:DIR`` with ``crop=detect``): dlib's HOG frontal face
  detector (largest face), the box enlarged ``scale`` times (default 1.6) around its centre moved up by
  ``shift`` (default 0.10) box heights to include the forehead; centre square when no face is found.

Boxes reaching outside the image are padded (``pad``: ``edge`` replicate [default], ``constant`` black,
``reflect``), never shifted, so the face stays centred as the rule says.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from fsrbench.imageio import center_square, pil_resize

DEFAULT_DETECT_SCALE = 1.6
DEFAULT_DETECT_SHIFT = 0.10


@dataclass(frozen=True)
class Box:
    """Integer crop box in pixels: rows y0:y1, columns x0:x1 (may reach outside the image)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def square_box(cx: float, cy: float, side: float) -> Box:
    """Square integer box of side ``round(side)`` centred (as closely as integers allow) on (cx, cy)."""
    s = max(1, int(round(side)))
    x0 = int(round(cx - s / 2.0))
    y0 = int(round(cy - s / 2.0))
    return Box(x0, y0, x0 + s, y0 + s)


def points_box(points: np.ndarray, scale: float, shift: float = 0.0) -> Box:
    """Square box around ``points`` [K,2]: centre = centre of their bounding box moved down by
    ``shift`` × its height (negative = up), side = ``scale`` × the larger bounding-box side."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    lo, hi = p.min(0), p.max(0)
    w, h = hi - lo
    cx, cy = (lo + hi) / 2.0
    return square_box(cx, cy + shift * h, scale * max(w, h))


def eyes_mouth_box(lm5: np.ndarray, scale: float = 3.2) -> Box:
    """CelebA 5-point rule (fsrbench CHOICE): points = left eye, right eye, nose, left/right mouth corner.

    Centre = midpoint between the eye centre and the mouth centre; side = ``scale`` × the distance between
    those two centres (3.2 puts chin and eyebrows inside the crop, like DIC's released crops)."""
    p = np.asarray(lm5, dtype=np.float64)
    eye = (p[0] + p[1]) / 2.0
    mouth = (p[3] + p[4]) / 2.0
    c = (eye + mouth) / 2.0
    return square_box(c[0], c[1], scale * float(np.linalg.norm(mouth - eye)))


def crop_box(img: np.ndarray, box: Box, pad: str = "edge") -> np.ndarray:
    """``img[y0:y1, x0:x1]`` with padding where the box leaves the image."""
    h, w = img.shape[:2]
    px0, py0 = max(0, -box.x0), max(0, -box.y0)
    px1, py1 = max(0, box.x1 - w), max(0, box.y1 - h)
    if px0 or py0 or px1 or py1:
        mode = {"edge": "edge", "constant": "constant", "reflect": "symmetric"}.get(pad)
        if mode is None:
            raise ValueError(f"crop pad={pad!r}; choose edge, constant or reflect")
        img = np.pad(img, ((py0, py1), (px0, px1), (0, 0)), mode=mode)
    return np.ascontiguousarray(img[box.y0 + py0:box.y1 + py0, box.x0 + px0:box.x1 + px0])


def crop_resize(img: np.ndarray, box: Box, size: int = 128, pad: str = "edge",
                points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop ``box`` and resize to ``size``²; ``points`` [K,2] are mapped to the output's pixels."""
    hr = pil_resize(crop_box(img, box, pad), size)
    mapped = None
    if points is not None:
        p = np.asarray(points, dtype=np.float64).copy()
        p[:, 0] = (p[:, 0] - box.x0) * size / box.w
        p[:, 1] = (p[:, 1] - box.y0) * size / box.h
        mapped = p
    return hr, mapped


def dic_bbox_crop(img: np.ndarray, bbox: Any, size: int = 128,
                  points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """DIC's crop: ``img[ymin:ymax, xmin:xmax]`` (NumPy slicing, as DIC does), PIL bicubic to ``size``²."""
    xmin, ymin, xmax, ymax = (int(v) for v in bbox)
    h, w = img.shape[:2]
    if not (0 <= xmin < xmax <= w and 0 <= ymin < ymax <= h):
        raise ValueError(f"DIC box {[xmin, ymin, xmax, ymax]} lies outside the {w}x{h} image")
    return crop_resize(img, Box(xmin, ymin, xmax, ymax), size, points=points)


# ------------------------------------------------------------------------------------------------
# face detection crop for plain folders
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _hog_detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


def detect_face_box(img: np.ndarray) -> tuple[float, float, float, float] | None:
    """Largest dlib HOG frontal-face box (x0, y0, x1, y1) or None; small images are upsampled once."""
    det = _hog_detector()
    upsample = 1 if max(img.shape[:2]) < 400 else 0
    rects = det(np.ascontiguousarray(img), upsample)
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return (float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))


def detect_crop_info(img: np.ndarray, size: int = 128, scale: float = DEFAULT_DETECT_SCALE,
                     shift: float = DEFAULT_DETECT_SHIFT, pad: str = "edge") -> tuple[np.ndarray, dict[str, Any]]:
    """Face-detection crop and how it was made: ``{"crop": "detect"|"center", "box": [...]}``."""
    box = detect_face_box(img)
    if box is None:
        return pil_resize(center_square(img), size), {"crop": "center", "reason": "no face detected"}
    x0, y0, x1, y1 = box
    side = scale * max(x1 - x0, y1 - y0)
    b = square_box((x0 + x1) / 2.0, (y0 + y1) / 2.0 - shift * (y1 - y0), side)
    hr, _ = crop_resize(img, b, size, pad)
    return hr, {"crop": "detect", "box": b.as_list(), "face_box": [x0, y0, x1, y1]}


def detect_crop(img: np.ndarray, size: int = 128, **kw: Any) -> np.ndarray:
    """The ``crop=detect`` rule of ``folder:`` sets (see module docstring); returns uint8 [size,size,3]."""
    return detect_crop_info(img, size, **kw)[0]
