"""Contracts of the face-analysis models (landmarks, identity, FER, AU); moved here from analysis/base.py.

Every model has an ``id`` that includes its version and weight hash prefix (it is part of cache keys and
is printed with every face metric). Images are uint8 RGB arrays [H,W,3] (or [N,H,W,3] batches); boxes are
in pixels of that image. A face that cannot be analysed gives a result with ``ok=False`` and a
``reason``; analysers never raise for a bad face (they may raise :class:`fsrbench.api.Unavailable` at
construction when their weights are missing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np


def as_rgb_u8(image: np.ndarray) -> np.ndarray:
    """A uint8 image as contiguous RGB [H,W,3] (gray and 1-channel replicated, alpha dropped)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {a.shape}")
    return np.ascontiguousarray(a)


def face_image(image: np.ndarray, min_size: int = 8) -> tuple[np.ndarray | None, str]:
    """``(rgb_u8, "")`` when ``image`` can hold an analysable face, else ``(None, reason)``:
    not uint8 RGB-like, smaller than ``min_size`` px, or blank (no contrast)."""
    try:
        img = as_rgb_u8(image)
    except ValueError as exc:
        return None, str(exc)
    h, w = img.shape[:2]
    if min(h, w) < min_size:
        return None, f"image too small ({w}x{h} px < {min_size} px)"
    if int(img.max()) - int(img.min()) < 2:
        return None, "blank image (no contrast)"
    return img, ""


@dataclass(frozen=True)
class FaceBox:
    """Axis-aligned face box in pixels; ``rotation`` (radians) is used by MediaPipe's ROI graph."""

    x0: float
    y0: float
    x1: float
    y1: float
    rotation: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1, self.rotation)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    def valid(self, min_side: float = 2.0) -> bool:
        """Finite coordinates and both sides at least ``min_side`` px."""
        return all(map(math.isfinite, self.as_tuple())) and self.width >= min_side and self.height >= min_side

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass
class LandmarkResult:
    points: np.ndarray | None  # [K,2] or [K,3] float, pixels of the analysed image; None if failed
    box: FaceBox | None = None  # the box used (detected or given)
    ok: bool = True
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str, box: FaceBox | None = None) -> "LandmarkResult":
        return cls(points=None, box=box, ok=False, reason=reason)


@runtime_checkable
class LandmarkModel(Protocol):
    id: str
    num_points: int

    def detect(self, image: np.ndarray) -> LandmarkResult:
        """Find the face and its landmarks (used on HR images)."""

    def fit(self, image: np.ndarray, box: FaceBox) -> LandmarkResult:
        """Landmarks inside a given box (used on SR/LR versions with the HR box); deterministic."""


@runtime_checkable
class IdentityModel(Protocol):
    id: str
    dim: int

    def embed(self, image: np.ndarray, box: FaceBox) -> np.ndarray | None:
        """L2-normalisable descriptor of the face in ``box``, or None if it cannot be computed."""


class FERModel:
    """Facial-expression recognition plugin (entry-point group ``fsrbench.fer``).

    ``predict_proba`` owns its preprocessing (crop/resize/colour) and returns softmax probabilities
    [N, C] in the order of ``classes``.
    """

    kind: ClassVar[str] = "fer"  # the registry a plugin subclass belongs to (--plugin infers it)
    name: ClassVar[str] = ""
    classes: ClassVar[tuple[str, ...]] = ()
    id: str = ""  # name + version + weight-hash prefix

    def predict_proba(self, faces: np.ndarray, boxes: Sequence[FaceBox | None] | None = None) -> np.ndarray:
        raise NotImplementedError


class AUEstimator:
    """Action-unit estimator plugin (entry-point group ``fsrbench.au``).

    ``estimate`` maps 478-point MediaPipe landmarks [N,478,3] (pixels) to AU scores [N, len(aus)];
    ``present`` applies the estimator's documented presence rule.
    """

    kind: ClassVar[str] = "au"  # the registry a plugin subclass belongs to (--plugin infers it)
    name: ClassVar[str] = ""
    aus: ClassVar[tuple[str, ...]] = ()
    id: str = ""

    def estimate(self, landmarks478: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def present(self, scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError
