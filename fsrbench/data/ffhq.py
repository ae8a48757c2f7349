"""FFHQ reader (``--datasets ffhq``): ``images1024x1024`` (default) or ``thumbnails128x128``.

Layout (the official tree: 1,000 images per sub-folder; flat folders work too)::

    ROOT/images1024x1024/00000/00000.png ... 69000/69999.png
    ROOT/thumbnails128x128/00000/00000.png ...

HR = the 1024×1024 image resized to 128×128 with the canonical PIL bicubic resizer (docs/spec/data.md §1).
``source=thumbnails128x128`` uses NVIDIA's thumbnails as they are (made with a different resizer, so the
numbers are not interchangeable; the source is part of the fingerprint); ``source=auto`` (default) takes
images1024x1024 when present. An image of the wrong size is skipped with the reason.

Splits: ``test`` = the shipped, hash-pinned list ``ffhq-test1000`` (images 60000–60999, the first 1,000 of
FFHQ's validation range — an fsrbench CHOICE; AffectSRNet does not publish its list), ``val``
(60000–69999), ``train`` (00000–59999), ``all``; ``split_file=FILE`` (one 5-digit id per line) replaces
the list. Ids are the 5-digit image numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import DataError
from fsrbench.data.base import FaceDataset
from fsrbench.data.splits import load_split, read_split_file
from fsrbench.imageio import pil_resize

SOURCES = {"images1024x1024": 1024, "thumbnails128x128": 128}


class FFHQ(FaceDataset):
    name = "ffhq"
    description = "FFHQ 1024->128 (PIL bicubic); test = ffhq-test1000 (ids 60000-60999)"
    splits = ("test", "val", "train", "all")
    download = (
        "FFHQ (github.com/NVlabs/ffhq-dataset): download images1024x1024/ (or thumbnails128x128/, numbers not "
        "interchangeable) into one folder ROOT (e.g. /data/FFHQ) so that ROOT/images1024x1024/60000/60000.png exists. "
        "Then use --datasets ffhq:ROOT.")
    test_splits = ("test", "val", "all")  # hold test images: `fsrbench train` refuses them
    crop_rule = "resize"

    def __init__(self, arg: str | None = None, data_root: str | None = None, split: str | None = None,
                 protocol: Any = None, **options: Any) -> None:
        super().__init__(arg, data_root, split, protocol, **options)
        src = str(self.options.get("source", "auto"))
        if src == "auto":
            src = next((s for s in SOURCES if (self.root / s).is_dir()), "")
            if not src:
                raise FileNotFoundError(f"ffhq: neither images1024x1024/ nor thumbnails128x128/ in {self.root}; "
                                        "download FFHQ (github.com/NVlabs/ffhq-dataset) and point --data-root at it")
        elif src not in SOURCES:
            raise ValueError(f"ffhq: source={src!r}; choose images1024x1024, thumbnails128x128 or auto")
        if not (self.root / src).is_dir():
            raise FileNotFoundError(f"ffhq: {self.root / src} is not a directory; download it or change source=")
        self.source = src
        self.src_dir = self.root / src

    def crop_params(self) -> dict[str, Any]:
        return {"source": self.source}

    def _path_of(self, sid: str) -> Path:
        n = int(sid)
        nested = self.src_dir / f"{n // 1000 * 1000:05d}" / f"{sid}.png"
        return nested if nested.is_file() else self.src_dir / f"{sid}.png"

    def _index(self) -> tuple[list[str], dict[str, Any]]:
        if self.options.get("split_file"):
            sl = read_split_file(self.options["split_file"])
            wanted = [Path(i).stem for i in sl.ids]
            self.split_card = sl.card()
        elif self.split == "test":
            sl = load_split("ffhq-test1000")
            wanted = list(sl.ids)
            self.split_card = sl.card()
        else:
            rng = {"val": range(60000, 70000), "train": range(0, 60000), "all": range(0, 70000)}[self.split]
            present = sorted(p.stem for p in self.src_dir.rglob("*.png") if p.stem.isdigit())
            wanted = [s for s in present if int(s) in rng]
            self.split_card = {"split": self.split, "range": [rng.start, rng.stop - 1]}
        self.split_size = len(wanted)
        order, entries = [], {}
        for sid in wanted:
            if not sid.isdigit():
                self.skipped.append((sid, "FFHQ ids are 5-digit numbers"))
                continue
            path = self._path_of(sid)
            if not path.is_file():
                self.skipped.append((str(path), "image file missing"))
                continue
            order.append(sid)
            entries[sid] = {"path": str(path)}
        return order, entries

    def _make_hr(self, sample_id: str, entry: Any, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        want = SOURCES[self.source]
        if img.shape[:2] != (want, want):
            raise DataError(f"{entry['path']}: size {img.shape[1]}x{img.shape[0]}, expected {want}x{want} "
                            f"({self.source})")
        return pil_resize(img, self.hr_size), {"source": self.source}
