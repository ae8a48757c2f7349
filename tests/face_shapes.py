"""Hand-drawn face geometry shared by tests in several folders (import: ``from face_shapes import face68``)."""
from __future__ import annotations

import numpy as np


def face68() -> np.ndarray:
    """A frontal 68-point face drawn by hand in a 128 px frame (image-left brow/eye first)."""
    t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([64 + 44 * np.cos(t), 60 + 50 * np.sin(t)], 1)  # 0 = image left, 8 = chin
    brow_l = np.stack([np.linspace(30, 56, 5), [48, 44, 43, 44, 46]], 1)
    brow_r = np.stack([128 - brow_l[::-1, 0], brow_l[::-1, 1]], 1)
    bridge = np.stack([[64] * 4, [52, 60, 68, 76]], 1)
    nostrils = np.stack([[55, 59, 64, 69, 73], [82, 84, 85, 84, 82]], 1)

    def eye(cx: float) -> np.ndarray:
        return np.array([[cx - 9, 58], [cx - 4, 55], [cx + 4, 55], [cx + 9, 58], [cx + 4, 61], [cx - 4, 61]])

    eye_l = eye(44)
    eye_r = eye_l[[3, 2, 1, 0, 5, 4]] * np.array([-1, 1]) + np.array([128, 0])  # mirror about x = 64
    outer = np.array([[48, 98], [53, 94], [59, 92], [64, 93], [69, 92], [75, 94], [80, 98],
                      [75, 104], [69, 107], [64, 108], [59, 107], [53, 104]], float)
    inner = np.array([[52, 98], [59, 96], [64, 97], [69, 96], [76, 98], [69, 101], [64, 102], [59, 101]], float)
    return np.vstack([jaw, brow_l, brow_r, bridge, nostrils, eye_l, eye_r, outer, inner]).astype(np.float64)
