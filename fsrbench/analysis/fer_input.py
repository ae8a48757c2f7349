"""What a FER model sees: the HR image's face box (used for HR and SR alike) and optional flip averaging.

FER models such as ``fer``'s mini-Xception were trained on, and are used by their authors on, face-detector
crops: ``fer.FER.detect_emotions`` finds a face with OpenCV's Haar cascade, squares the box, grows it by
10 px per side and classifies that crop.  fsrbench follows that rule with one change that the FSR setting
needs: the box is found **once, on the HR image**, and the same box is used for the HR image and every SR
version of it (a detector run on a degraded SR image would move the crop with the degradation).

Box sources (metric option ``fer_box``, CLI ``--fer-box``; [CHOICE], default :data:`DEFAULT_FER_BOX`):

* ``hog`` — dlib's HOG frontal-face detector (the ``dlib68`` landmark model's box, largest face,
  upsample 1).  Chosen by measured accuracy (docs/metrics.md, "Choosing the FER input"): best on the
  selection half of the labelled faces, and it finds a face in 297 of the 300 faces-val crops.
* ``haar`` — OpenCV's ``haarcascade_frontalface_default.xml`` from OpenCV's own data folder with ``fer``'s
  defaults (``scaleFactor`` 1.1, ``minNeighbors`` 5, ``minSize`` 50 px, ``CASCADE_SCALE_IMAGE``) on the
  OpenCV grey image, largest face — the ``fer`` package's own detector.  It misses 148 of the 300 tight
  faces-val crops.
* ``mediapipe`` — the HR MediaPipe ROI (landmark box ×1.5; much larger than a detector box).
* ``whole`` (alias ``none``) — no box: the whole crop is the face (fsrbench's behaviour before the
  detector box; gives the old FER id, so stored results stay comparable with themselves only).

When the HR image has no box, option ``fer_fallback`` decides ([CHOICE], default ``whole``): ``whole``
scores the whole crop and records the reason in the metrics' ``*_fer_fallback`` column (counted on every
board), ``skip`` leaves the image out (NaN, with the reason).

Option ``fer_flip`` ([CHOICE], default false): average the probabilities of the crop and of its mirror image
(mirrored box).  Measured not to help on the selection faces, so it is off by default.

The FER *pipeline id* (:func:`pipeline_id`) is the plugin's id plus the box source, the fallback and the
flip; it is what results store as ``fer_model``, so numbers of different FER inputs never mix.  The whole-crop
mode without flip keeps the plugin's plain id.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fsrbench.analysis.fer_minixception import to_gray
from fsrbench.api.face import FaceBox, face_image
from fsrbench.errors import Unavailable

BOX_MODES = ("hog", "haar", "mediapipe", "whole")
DEFAULT_FER_BOX = "hog"
FALLBACKS = ("whole", "skip")
DEFAULT_FER_FALLBACK = "whole"
_ALIASES = {"none": "whole", "dlib": "hog", "dlib-hog": "hog", "opencv-haar": "haar"}

# fer.FER's defaults (fer/fer.py: scale_factor, min_neighbors, min_face_size)
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_SIZE = 50
HAAR_FILE = "haarcascade_frontalface_default.xml"

_BOX_WORDS = {
    "hog": "dlib HOG face box of the HR image (largest face, upsample 1)",
    "haar": (f"OpenCV Haar cascade box of the HR image ({HAAR_FILE}, scaleFactor {HAAR_SCALE_FACTOR}, "
             f"minNeighbors {HAAR_MIN_NEIGHBORS}, minSize {HAAR_MIN_SIZE} px: the fer package's detector)"),
    "mediapipe": "MediaPipe face ROI of the HR image (landmark box x1.5)",
    "whole": "whole image as the face (no detector box)",
}


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class FERInput:
    """The FER input settings of a run: box source, no-box fallback, flip averaging."""

    box: str = DEFAULT_FER_BOX
    fallback: str = DEFAULT_FER_FALLBACK
    flip: bool = False

    @classmethod
    def from_options(cls, *option_dicts: Mapping[str, Any] | None) -> "FERInput":
        """Settings from metric/run options (``fer_box``, ``fer_fallback``, ``fer_flip``); later dicts win.

        Raises ValueError naming the option and the allowed values.
        """
        merged: dict[str, Any] = {}
        for d in option_dicts:
            merged.update({k: v for k, v in (d or {}).items() if v is not None})
        box = str(merged.get("fer_box", DEFAULT_FER_BOX)).strip().lower()
        box = _ALIASES.get(box, box)
        if box not in BOX_MODES:
            raise ValueError(f"option fer_box = {merged.get('fer_box')!r}; allowed: {', '.join(BOX_MODES)} "
                             f"(or 'none' = whole)")
        fallback = str(merged.get("fer_fallback", DEFAULT_FER_FALLBACK)).strip().lower()
        if fallback not in FALLBACKS:
            raise ValueError(f"option fer_fallback = {fallback!r}; allowed: {', '.join(FALLBACKS)}")
        return cls(box=box, fallback=fallback, flip=_truthy(merged.get("fer_flip", False)))

    def pipeline_id(self, fer_id: str) -> str:
        return pipeline_id(fer_id, self)

    def describe(self, fer: Any = None) -> str:
        """The preprocessing in words (for the FER card)."""
        words = _BOX_WORDS[self.box] + ", used for HR and SR alike"
        if self.box != "whole":
            words += ("; no HR box: whole image (counted)" if self.fallback == "whole"
                      else "; no HR box: image left out")
        own = getattr(fer, "preprocessing", "")
        if own:
            words += "; then " + own
        if self.flip:
            words += "; probabilities averaged with the mirrored image's"
        return words


def pipeline_id(fer_id: str, settings: FERInput) -> str:
    """``fer_id`` plus the FER input: ``<fer id>-hrbox-hog``, ``-fbskip`` (skip fallback), ``-flip``.

    The whole-crop input without flip is the plain ``fer_id`` (the id stored results had before the box).
    """
    tag = ""
    if settings.box != "whole":
        tag += f"-hrbox-{settings.box}"
        if settings.fallback != DEFAULT_FER_FALLBACK:
            tag += f"-fb{settings.fallback}"
    if settings.flip:
        tag += "-flip"
    return fer_id + tag


def mirror_box(box: FaceBox | None, width: int) -> FaceBox | None:
    """The box of the horizontally mirrored image (pixel edges: x -> width - x)."""
    if box is None:
        return None
    return FaceBox(width - box.x1, box.y0, width - box.x0, box.y1, -box.rotation)


def predict(fer: Any, faces: np.ndarray, boxes: Sequence[FaceBox | None], flip: bool = False) -> np.ndarray:
    """FER probabilities [N,C] of ``faces`` in ``boxes`` (None = whole image); with ``flip`` the mean of the
    image's and its mirror image's probabilities."""
    arr = np.asarray(faces)
    p = np.asarray(fer.predict_proba(arr, list(boxes)), dtype=np.float64)
    if not flip:
        return p
    mirrored = np.ascontiguousarray(arr[:, :, ::-1])
    q = np.asarray(fer.predict_proba(mirrored, [mirror_box(b, arr.shape[2]) for b in boxes]), dtype=np.float64)
    return (p + q) / 2.0


class HaarBox:
    """OpenCV's Haar frontal-face cascade with ``fer``'s parameters; :meth:`detect` -> (box | None, reason)."""

    def __init__(self) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise Unavailable("fer_box=haar needs OpenCV's CascadeClassifier and its data folder; fix: "
                              "pip install opencv-contrib-python, or use --fer-box hog")
        path = Path(cv2.data.haarcascades) / HAAR_FILE
        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise Unavailable(f"{path}: cannot load the Haar cascade; reinstall opencv or use --fer-box hog")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.id = (f"haar-{cv2.__version__}-{sha}-sf{HAAR_SCALE_FACTOR:g}-mn{HAAR_MIN_NEIGHBORS}"
                   f"-min{HAAR_MIN_SIZE}")

    def detect(self, image: np.ndarray) -> tuple[FaceBox | None, str]:
        img, problem = face_image(image)
        if img is None:
            return None, problem
        faces = self.cascade.detectMultiScale(to_gray(img), scaleFactor=HAAR_SCALE_FACTOR,
                                              minNeighbors=HAAR_MIN_NEIGHBORS, flags=self.cv2.CASCADE_SCALE_IMAGE,
                                              minSize=(HAAR_MIN_SIZE, HAAR_MIN_SIZE))
        if len(faces) == 0:
            return None, "no face found by the Haar cascade"
        x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda r: r[2] * r[3])
        return FaceBox(float(x), float(y), float(x + w), float(y + h)), ""


_HAAR: list[HaarBox] = []


def get_haar() -> HaarBox:
    if not _HAAR:
        _HAAR.append(HaarBox())
    return _HAAR[0]
