"""A complete fsrbench FER-model plugin, in one module: a toy, weight-free expression "recogniser".

docs/plugins.md walks through it.  It is not a real FER model -- it maps the mean colour and contrast of the
face to softmax probabilities with a fixed linear layer -- but it satisfies the contract, so ECM and
expression agreement run on it and reach the boards (main table, mean rank, significance marks, the
"Face models" line, stored boards) with no other file edited (``tests/test_plugin_proof.py``).

Run it without installing anything::

    fsrbench run --plugin docs/examples/fer_plugin.py:ColourFER --fer colour-fer --metrics ecm,expression \\
        --datasets demo

or register it in your package's pyproject.toml::

    [project.entry-points."fsrbench.fer"]
    colour-fer = "my_package.fer_plugin:ColourFER"
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fsrbench.api import FaceBox, FERModel

# fixed weights: 6 image statistics (per-channel mean and standard deviation in [0, 1]) -> 7 class logits
_W = np.array([[3.0, -2.0, 1.0, 0.5, -1.0, 2.0, 0.0],
               [-1.0, 2.5, -2.0, 1.0, 0.5, -0.5, 1.0],
               [0.5, -1.0, 2.0, -2.5, 1.5, 0.0, -0.5],
               [4.0, 1.0, -3.0, 2.0, -1.0, -2.0, 0.5],
               [-2.0, 3.0, 1.0, -1.0, 2.0, 0.5, -1.5],
               [1.0, -1.5, 2.5, 0.0, -3.0, 1.0, 2.0]])


class ColourFER(FERModel):
    name = "colour-fer"
    classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # canonical tokens
    id = "colour-fer-v1"  # name + version (+ a weight hash for a real model): keys the analysis cache

    def predict_proba(self, faces: np.ndarray, boxes: Sequence[FaceBox | None] | None = None) -> np.ndarray:
        """uint8 RGB faces [N,H,W,3] (the whole face-centred crop; ``boxes`` unused) -> softmax [N, 7]."""
        x = np.asarray(faces, dtype=np.float64) / 255.0
        stats = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)  # [N, 6]
        logits = 8.0 * (stats - 0.4) @ _W
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
