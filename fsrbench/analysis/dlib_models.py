"""dlib face models: 68-point landmarks (``Dlib68``) and the 128-D identity descriptor (``DlibIdentity``).

Weights come from ``face-recognition-models==0.3.0`` (located without importing it, sha256-pinned);
the code from ``dlib-bin``. Both models need a *detector-like* face box (dlib's HOG frontal detector):
a full-image box shifts landmarks by ~10 px and moves the descriptor beyond dlib's 0.6 same-person
threshold (docs/spec/stack.md). So: detect the box on the HR image (:meth:`Dlib68.detect` /
:meth:`DlibIdentity.detect_box`) and **reuse that box** for the image's LR/SR versions (:meth:`Dlib68.fit`,
:meth:`DlibIdentity.embed`).

Inputs are uint8 RGB [H,W,3] (grayscale [H,W] is stacked). HOG upsampling (``upsample``, CHOICE, default 1)
lets the detector find the ~60-90 px faces of 128x128 crops. Timing on CPU: landmarks ~0.4 ms, descriptor
~60 ms per face.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fsrbench.api.face import FaceBox, LandmarkResult, face_image
from fsrbench.api import Unavailable

DLIB_SAME_PERSON_THRESHOLD = 0.6  # dlib's documented Euclidean threshold for the 128-D descriptor


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise Unavailable(f"dlib is not installed ({exc}); fix: pip install \"dlib-bin==20.0.1.post1\"") from exc
    return dlib




def _rect(dlib: Any, box: FaceBox) -> Any:
    return dlib.rectangle(int(round(box.x0)), int(round(box.y0)), int(round(box.x1)), int(round(box.y1)))


def _valid_box(box: FaceBox | None) -> bool:
    return box is not None and box.valid(min_side=4)


class _HOG:
    """Shared HOG frontal face detector (largest face wins)."""

    def __init__(self, upsample: int = 1) -> None:
        self.dlib = _import_dlib()
        self.upsample = int(upsample)
        self._det = self.dlib.get_frontal_face_detector()

    def __call__(self, img: np.ndarray) -> tuple[FaceBox | None, float]:
        rects, scores, _ = self._det.run(img, self.upsample, 0.0)
        if not len(rects):
            return None, float("nan")
        i = max(range(len(rects)), key=lambda k: rects[k].width() * rects[k].height())
        r = rects[i]
        return FaceBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(scores[i])


class Dlib68:
    """dlib 68-point landmarks (``LandmarkModel``; registry name ``dlib68``). Options: ``upsample`` (1),
    ``min_size`` (8 px)."""

    name = "dlib68"
    description = "dlib 68-point landmarks (HOG detector; shape predictor in a given box)"
    num_points = 68

    def __init__(self, upsample: int = 1, min_size: int = 8, **_: Any) -> None:
        from fsrbench.analysis import carriers

        path = carriers.locate("dlib-shape68")
        self.hog = _HOG(upsample)
        self.predictor = self.hog.dlib.shape_predictor(str(path))
        self.min_size = int(min_size)
        self.id = f"dlib68-{self.hog.dlib.__version__}-{carriers.sha256_file(path)[:12]}-hog{self.hog.upsample}"

    def _shape(self, img: np.ndarray, box: FaceBox) -> np.ndarray:
        s = self.predictor(img, _rect(self.hog.dlib, box))
        return np.array([[p.x, p.y] for p in s.parts()], dtype=np.float64)

    def detect(self, image: np.ndarray) -> LandmarkResult:
        img, problem = face_image(image, self.min_size)
        if img is None:
            return LandmarkResult.failed(problem)
        box, score = self.hog(img)
        if box is None:
            return LandmarkResult.failed("no face found by dlib's HOG detector")
        return LandmarkResult(points=self._shape(img, box), box=box, extra={"score": score, "source": "hog"})

    def fit(self, image: np.ndarray, box: FaceBox) -> LandmarkResult:
        img, problem = face_image(image, self.min_size)
        if img is None:
            return LandmarkResult.failed(problem, box)
        if not _valid_box(box):
            return LandmarkResult.failed(f"invalid face box {box}", box)
        return LandmarkResult(points=self._shape(img, box), box=box)


class DlibIdentity:
    """dlib ResNet 128-D face descriptor (``IdentityModel``; registry name ``dlib``).

    ``embed(image, box)`` aligns the face with the 68-point shape predictor inside ``box`` and returns the
    descriptor (unit-free; dlib's same-person threshold is Euclidean distance 0.6). Options: ``upsample``
    (1, HOG detector for :meth:`detect_box`), ``num_jitters`` (0), ``padding`` (0.25, dlib's default
    chip padding), ``min_size`` (8 px).
    """

    name = "dlib"
    description = "dlib ResNet 128-D face descriptor (68-point alignment in a given box); same person: distance < 0.6"
    dim = 128

    def __init__(self, upsample: int = 1, num_jitters: int = 0, padding: float = 0.25, min_size: int = 8,
                 **_: Any) -> None:
        from fsrbench.analysis import carriers

        rec_path = carriers.locate("dlib-face-recognition")
        shape_path = carriers.locate("dlib-shape68")
        self.hog = _HOG(upsample)
        dlib = self.hog.dlib
        self.predictor = dlib.shape_predictor(str(shape_path))
        self.rec = dlib.face_recognition_model_v1(str(rec_path))
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self.min_size = int(min_size)
        self.id = (f"dlib-resnet128-{dlib.__version__}-{carriers.sha256_file(rec_path)[:12]}"
                   f"-s68-j{self.num_jitters}-p{self.padding:g}")

    def detect_box(self, image: np.ndarray) -> FaceBox | None:
        """HOG face box of an (HR) image, or None."""
        img, _ = face_image(image, self.min_size)
        return None if img is None else self.hog(img)[0]

    def embed(self, image: np.ndarray, box: FaceBox) -> np.ndarray | None:
        img, _ = face_image(image, self.min_size)
        if img is None or not _valid_box(box):
            return None
        shape = self.predictor(img, _rect(self.hog.dlib, box))
        d = self.rec.compute_face_descriptor(img, shape, self.num_jitters, self.padding)
        v = np.asarray(d, dtype=np.float64)
        return v if np.all(np.isfinite(v)) else None


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between descriptors (last axis); dlib's same-person rule is < 0.6."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between descriptors (last axis), in [-1, 1]."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)
