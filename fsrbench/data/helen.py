"""Helen reader (``--datasets helen``): the Helen images with their 194-point annotation files.

Layout (the official download unzipped; the images may also sit in ``train/`` and ``test/``)::

    ROOT/helen_1/ ... ROOT/helen_5/   *.jpg   (or ROOT/train/, ROOT/test/, ROOT/images/; any depth)
    ROOT/annotation/1.txt ...            first line = image name (no suffix), then 194 lines ``x , y``
    ROOT/trainnames.txt, ROOT/testnames.txt   (optional; else the train/ and test/ folders define the split)

Splits:

* ``test`` — the 50-image test subset used by DIC and SPARNet. Its file list is **not published** in
  DIC's or SPARNet's code (DIC distributes the 50 cropped PNGs on Google/Baidu Drive), so fsrbench ships
  no list. Give it with ``split_file=FILE`` (one Helen image name per line, e.g. the stems of DIC's
  ``Helen/HR`` PNGs), or evaluate DIC's released PNGs directly with the ``released`` dataset.
* ``test-all`` (Helen's 330 test images), ``train`` (2,000), ``all``.

HR crop (``crop=landmarks194``, the only rule; fsrbench CHOICE because DIC's boxes are unpublished):
:func:`fsrbench.data.crops.points_box` around the 194 points with ``crop_scale`` (default 1.3) and the
centre moved up ``crop_shift`` (default -0.10) box heights (the points stop at the eyebrows), edge
padding, PIL bicubic to 128. The landmarks, mapped to the HR crop, are in ``meta["landmarks194"]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import DataError
from fsrbench.data.base import FaceDataset
from fsrbench.data.crops import crop_resize, points_box
from fsrbench.data.splits import read_split_file

N_POINTS = 194
_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_annotation(path: Path) -> tuple[str, np.ndarray]:
    """One Helen annotation file -> (image name, [194,2] points). Raises ValueError with the reason."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty annotation file")
    name = lines[0]
    pts = []
    for ln in lines[1:]:
        parts = [p for p in ln.replace(",", " ").split() if p]
        if len(parts) != 2:
            raise ValueError(f"malformed point line {ln!r}")
        pts.append((float(parts[0]), float(parts[1])))
    if len(pts) != N_POINTS:
        raise ValueError(f"{len(pts)} points, expected {N_POINTS} (missing annotation lines)")
    return name, np.asarray(pts, dtype=np.float64)


class Helen(FaceDataset):
    name = "helen"
    description = "Helen with 194-point annotations (landmark crop); test = the DIC 50 subset via split_file"
    splits = ("test", "test-all", "train", "all")
    download = (
        "Helen (www.ifp.illinois.edu/~vuongle2/helen/): download helen_1.zip ... helen_5.zip, annotation.zip, "
        "trainnames.txt and testnames.txt. Unzip everything into one folder ROOT (e.g. /data/Helen) so that "
        "ROOT/helen_1/*.jpg ... ROOT/helen_5/*.jpg, ROOT/annotation/1.txt ... 2330.txt, ROOT/trainnames.txt and "
        "ROOT/testnames.txt exist. Evaluate its 330 test images with --datasets helen:ROOT@test-all; DIC's 50-image "
        "subset is not published as a list (split_file=FILE, or DIC's PNGs with released:DIR).")
    test_splits = ("test", "test-all", "all")  # hold test images: `fsrbench train` refuses them
    crop_rule = "landmarks194"

    def __init__(self, arg: str | None = None, data_root: str | None = None, split: str | None = None,
                 protocol: Any = None, **options: Any) -> None:
        super().__init__(arg, data_root, split, protocol, **options)
        self.crop_scale = float(self.options.get("crop_scale", 1.3))
        self.crop_shift = float(self.options.get("crop_shift", -0.10))
        self.pad = str(self.options.get("pad", "edge"))
        if self.split == "test" and not self.options.get("split_file"):
            raise FileNotFoundError(
                "helen: the 50-image DIC/SPARNet test subset is not published as a list, so fsrbench cannot "
                "select it by itself. Pass split_file=FILE (one Helen image name per line, e.g. the names of DIC's "
                "released Helen/HR PNGs; in a config file: `helen: {root: ..., split_file: FILE}`), use "
                "`--datasets released:/path/to/Helen` on DIC's PNGs, or choose Helen's 330 test images: "
                "`--datasets helen@test-all` (or `split: test-all` in the config file)")

    def crop_params(self) -> dict[str, Any]:
        return {"scale": self.crop_scale, "shift": self.crop_shift, "pad": self.pad}

    def _images(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() in _SUFFIXES and p.is_file() and "annotation" not in p.parent.name.lower():
                out.setdefault(p.stem, p)
        return out

    def _names_file(self, kind: str) -> list[str] | None:
        p = self.root / f"{kind}names.txt"
        if not p.is_file():
            return None
        names = []
        for ln in p.read_text().splitlines():
            parts = ln.replace(",", " ").split()
            if parts:  # "1, 100032540_1" or "100032540_1"
                names.append(Path(parts[-1]).stem)
        return names

    def _index(self) -> tuple[list[str], dict[str, Any]]:
        ann_dir = next((self.root / d for d in ("annotation", "annotations", "Annotation") if (self.root / d).is_dir()), None)
        if ann_dir is None:
            raise FileNotFoundError(f"helen: no annotation/ folder in {self.root}; unzip annotation.zip from the "
                                    "Helen download there (2,330 files 1.txt ... 2330.txt)")
        annotations: dict[str, tuple[Path, np.ndarray]] = {}
        for f in sorted(ann_dir.glob("*.txt"), key=lambda q: (len(q.stem), q.stem)):
            try:
                name, pts = read_annotation(f)
            except (ValueError, OSError) as exc:
                self.skipped.append((str(f), f"annotation unusable: {exc}"))
                continue
            annotations[Path(name).stem] = (f, pts)
        images = self._images()
        if not images:
            raise FileNotFoundError(f"helen: no .jpg/.png images under {self.root}; unzip helen_1..helen_5 there")
        if self.options.get("split_file"):
            sl = read_split_file(self.options["split_file"])
            wanted = [Path(i).stem for i in sl.ids]
            self.split_card = sl.card()
        elif self.split == "all":
            wanted = sorted(set(images) | set(annotations))
            self.split_card = {"split": "all"}
        else:
            kind = "test" if self.split == "test-all" else "train"
            wanted = self._names_file(kind)
            if wanted is not None:
                self.split_card = {"split": self.split, "source": f"{kind}names.txt"}
            else:
                folder = self.root / kind
                if not folder.is_dir():
                    raise FileNotFoundError(f"helen: split {self.split!r} needs {kind}names.txt or a {kind}/ folder in "
                                            f"{self.root}; both come with the Helen download")
                wanted = sorted(p.stem for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES)
                self.split_card = {"split": self.split, "source": f"{kind}/ folder"}
        self.split_size = len(wanted)
        order, entries = [], {}
        for name in wanted:
            if name not in images:
                self.skipped.append((f"{self.root}/**/{name}.jpg", "image file missing"))
                continue
            if name not in annotations:
                self.skipped.append((str(images[name]), f"no annotation file for {name} in {ann_dir}"))
                continue
            order.append(name)
            entries[name] = {"path": str(images[name]), "lm": annotations[name][1],
                             "annotation": str(annotations[name][0])}
        return order, entries

    def _make_hr(self, sample_id: str, entry: Any, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        lm = entry["lm"]
        h, w = img.shape[:2]
        if lm[:, 0].max() > w * 1.05 or lm[:, 1].max() > h * 1.05:
            raise DataError(f"{entry['path']}: annotation {entry['annotation']} reaches outside the {w}x{h} image "
                            "(wrong size: was the image resized?)")
        box = points_box(lm, self.crop_scale, self.crop_shift)
        hr, mapped = crop_resize(img, box, self.hr_size, self.pad, lm)
        return hr, {"landmarks194": mapped.astype(np.float32), "box": box.as_list()}
