"""Synthetic 128x128 RGB test data for the training-engine tests; nothing here is a face.

* :func:`write_images` — smooth gradients + sinusoids written as PNGs, used as ``folder:<dir>``;
* :class:`ArrayDataset` — random in-memory images, optionally with 68-point "annotations" in the metadata
  (and a white dot drawn at point 36, so flips can be checked against the image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fsrbench.api import Dataset, Sample


def write_images(root: Path, n: int = 24, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    for i in range(n):
        a = rng.random((3, 3))
        f = rng.random(2) * 3
        img = np.stack([a[c, 0] * xx + a[c, 1] * yy + a[c, 2] * np.sin(6.28 * (xx * f[0] + yy * f[1]))
                        for c in range(3)], -1)
        img = img - img.min()
        img = (img / (img.max() + 1e-6) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"img_{i:03d}.png")
    return root


class ArrayDataset(Dataset):
    """In-memory random images; optional 68-point annotations in the metadata."""

    name = "arrays"

    def __init__(self, n: int = 12, landmarks: bool = False, seed: int = 0) -> None:
        super().__init__(None)
        rng = np.random.default_rng(seed)
        self.imgs = rng.integers(0, 200, size=(n, 128, 128, 3), dtype=np.uint8)
        self.lms = rng.uniform(10, 117, size=(n, 68, 2)).round().astype(np.float32) if landmarks else None
        if landmarks:  # a white dot on landmark 36 (image-left eye corner) of every image
            for i in range(n):
                x, y = self.lms[i, 36].astype(int)
                self.imgs[i, y, x] = 255

    def ids(self) -> list[str]:
        return [f"a{i:02d}" for i in range(len(self.imgs))]

    def load(self, sample_id: str) -> Sample:
        i = int(sample_id[1:])
        meta = {"landmarks68": self.lms[i]} if self.lms is not None else {}
        return Sample(sample_id, self.imgs[i], meta)
