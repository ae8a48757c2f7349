"""The embedded ``demo`` dataset: a smoke-scale set of 16 faces that needs no download.

It is built deterministically from two public-domain photographs shipped inside installed dependencies:
scikit-image's ``astronaut`` (Eileen Collins, NASA) and matplotlib's ``grace_hopper.jpg`` (US Navy). Each
face is cropped square around its face box (found once with dlib's HOG detector and fixed here) at three
margins, each crop also mirrored, plus two small rotations (±6°) — 8 variants per photo, all resized to
128×128 with the canonical PIL bicubic resizer.

Use it to check that a method or metric runs end to end. Its numbers say nothing about a method's quality:
16 images of two people are far too few, and they are near-duplicates of each other.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from PIL import Image

from fsrbench.api import Dataset, Sample
from fsrbench.imageio import pil_resize, read_image

# (x0, y0, x1, y1) face boxes from dlib.get_frontal_face_detector()(img, 1), fixed here for determinism.
_SOURCES = {
    "astronaut": (175, 76, 265, 166),
    "grace_hopper": (180, 139, 366, 325),
}
_MARGINS = (1.5, 1.75, 2.0)
_ROTATIONS = (-6.0, 6.0)


def _source_image(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    import matplotlib

    return read_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


def _crop(img: np.ndarray, box: tuple[int, int, int, int], margin: float, angle: float = 0.0) -> np.ndarray:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side = int(round(max(x1 - x0, y1 - y0) * margin))
    pil = Image.fromarray(img)
    if angle:
        pil = pil.rotate(angle, resample=Image.BICUBIC, center=(cx, cy))
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return np.asarray(pil.crop((left, top, left + side, top + side)), dtype=np.uint8)


@lru_cache(maxsize=1)
def _build() -> tuple[tuple[str, np.ndarray, dict], ...]:
    items = []
    for src, box in _SOURCES.items():
        img = _source_image(src)
        for m in _MARGINS:
            face = pil_resize(_crop(img, box, m), 128)
            items.append((f"{src}_m{int(m * 100)}", face, {"source": src, "margin": m, "flip": False}))
            items.append((f"{src}_m{int(m * 100)}_flip", np.ascontiguousarray(face[:, ::-1]),
                          {"source": src, "margin": m, "flip": True}))
        for a in _ROTATIONS:
            face = pil_resize(_crop(img, box, 1.75, a), 128)
            items.append((f"{src}_rot{int(a):+d}", face, {"source": src, "margin": 1.75, "rotation": a}))
    return tuple(items)


class DemoDataset(Dataset):
    name = "demo"
    description = "16 faces built from two public-domain photos in scikit-image and matplotlib (smoke scale)"

    def ids(self) -> list[str]:
        return [i for i, _, _ in _build()]

    def load(self, sample_id: str) -> Sample:
        for i, img, meta in _build():
            if i == sample_id:
                return Sample(i, img.copy(), dict(meta, identity=meta["source"]))
        raise KeyError(sample_id)
