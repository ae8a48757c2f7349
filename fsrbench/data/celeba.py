"""CelebA reader (``--datasets celeba``): img_align_celeba + list_eval_partition + 5-point landmarks.

Layout (the official Google-Drive tree, or the same files flat in one folder, or the Kaggle CSV copy)::

    ROOT/Img/img_align_celeba/000001.jpg ...     (or ROOT/img_align_celeba/, also nested twice)
    ROOT/Eval/list_eval_partition.txt            (or ROOT/list_eval_partition.{txt,csv})
    ROOT/Anno/list_landmarks_align_celeba.txt    (or ROOT/list_landmarks_align_celeba.{txt,csv})

Splits: ``test`` = the shipped, hash-pinned list ``celeba-test1000`` (first 1,000 images of the official
test partition — an fsrbench CHOICE, *not* DIC's released test images), ``test-full`` (partition 2,
19,962 images), ``val`` (1), ``train`` (0), ``all``; ``split_file=FILE`` (one file name per line)
replaces the list.

HR crop (option ``crop``):

* ``landmarks5`` (default) — :func:`fsrbench.data.crops.eyes_mouth_box` on the aligned image's 5 points
  (``crop_scale``, default 3.2), edge padding, PIL bicubic to 128; an image without a landmark line is
  skipped and reported.
* ``dic`` (default when ``annotations=`` is given) — DIC's own rule on the in-the-wild images
  (``ROOT/Img/img_celeba`` or ``ROOT/img_celeba``) with DIC's annotation pickle
  (``new_train_info_list.pkl`` etc.: ``{name: {"bbox": [x0,y0,x1,y1], "landmark": [[x,y]*68]}}``), read
  with a restricted unpickler (plain containers and NumPy arrays only). Ids = the pickle's keys; the
  68 landmarks go to ``meta["landmarks68"]`` in HR pixels.
* ``center`` — centre 178×178 square of the aligned image, resized to 128.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import DataError
from fsrbench.data.base import FaceDataset
from fsrbench.data.crops import crop_resize, dic_bbox_crop, eyes_mouth_box
from fsrbench.data.splits import load_split, read_split_file
from fsrbench.imageio import center_square, pil_resize

ALIGNED_SIZE = (178, 218)  # width, height of img_align_celeba
PARTITION = {"train": 0, "val": 1, "test-full": 2}


def _first(root: Path, candidates: list[str]) -> Path | None:
    for c in candidates:
        p = root / c
        if p.exists():
            return p
    return None


def find_images(root: Path, kind: str = "img_align_celeba") -> Path | None:
    p = _first(root, [f"Img/{kind}/{kind}", f"Img/{kind}", f"{kind}/{kind}", kind])
    return p if p is not None and p.is_dir() else None


def read_partition(path: Path, skipped: list[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    with path.open(newline="") as fh:
        for i, line in enumerate(fh, 1):
            parts = line.replace(",", " ").split()
            if not parts or parts[0] == "image_id":
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                skipped.append((f"{path}:{i}", f"malformed partition line {line.strip()!r}"))
                continue
            out[parts[0]] = int(parts[1])
    return out


def read_landmarks5(path: Path, skipped: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """``list_landmarks_align_celeba.txt`` (count line, header line, ``name x1 y1 ... x5 y5``) or CSV."""
    out: dict[str, np.ndarray] = {}
    with path.open(newline="") as fh:
        for i, line in enumerate(fh, 1):
            parts = line.replace(",", " ").split()
            if not parts or (i <= 2 and not parts[0].lower().endswith((".jpg", ".png"))):
                continue  # count line / header
            if len(parts) != 11:
                skipped.append((f"{path}:{i}", f"landmark annotation line has {len(parts) - 1} values, expected 10"))
                continue
            try:
                out[parts[0]] = np.array([float(v) for v in parts[1:]], dtype=np.float64).reshape(5, 2)
            except ValueError:
                skipped.append((f"{path}:{i}", f"landmark annotation line is not numeric: {line.strip()[:60]!r}"))
    return out


class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"), ("builtins", "set")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an annotation pickle")


def read_dic_annotations(path: str | Path) -> dict[str, dict[str, Any]]:
    """DIC's annotation pickle: ``{image name: {"bbox": [...], "landmark": [[x, y], ...]}}`` (or name ->
    landmarks for the released test pickles). Only containers and NumPy arrays are allowed."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"DIC annotation file {p} does not exist (from annotations=); download the "
                                "`annotations` folder linked in DIC's README and fix the path")
    try:
        with p.open("rb") as fh:
            data = _SafeUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ValueError(f"{p}: not a DIC annotation pickle ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a dict of image name -> annotation, got {type(data).__name__}")
    return data


class CelebA(FaceDataset):
    name = "celeba"
    description = "CelebA aligned (5-point crop) or DIC-annotated in-the-wild crops; test = celeba-test1000"
    splits = ("test", "test-full", "val", "train", "all")
    download = (
        "CelebA (mmlab.ie.cuhk.edu.hk/projects/CelebA.html, the Google-Drive folder `CelebA`): download "
        "Img/img_align_celeba.zip, Eval/list_eval_partition.txt and Anno/list_landmarks_align_celeba.txt. Keep the "
        "download's layout under one folder ROOT (e.g. /data/CelebA): unzip so that ROOT/Img/img_align_celeba/000001.jpg "
        "exists, and ROOT/Eval/list_eval_partition.txt, ROOT/Anno/list_landmarks_align_celeba.txt. Then use "
        "--datasets celeba:ROOT, or --data-root / $FSRBENCH_DATA_ROOT pointing at the folder that holds CelebA/.")
    test_splits = ("test", "test-full", "all")  # hold test images: `fsrbench train` refuses them

    def __init__(self, arg: str | None = None, data_root: str | None = None, split: str | None = None,
                 protocol: Any = None, **options: Any) -> None:
        super().__init__(arg, data_root, split, protocol, **options)
        crop = self.options.get("crop", "auto")
        if crop == "auto":
            crop = "dic" if self.options.get("annotations") else "landmarks5"
        if crop not in ("landmarks5", "dic", "center"):
            raise ValueError(f"celeba: crop={crop!r}; choose landmarks5, dic or center")
        self.crop_rule = crop
        self.crop_scale = float(self.options.get("crop_scale", 3.2))
        self.pad = str(self.options.get("pad", "edge"))

    def crop_params(self) -> dict[str, Any]:
        if self.crop_rule == "landmarks5":
            return {"scale": self.crop_scale, "pad": self.pad}
        if self.crop_rule == "dic":
            return {"annotations": str(self.options.get("annotations"))}
        return {}

    # -- listing ----------------------------------------------------------------------------------
    def _split_ids(self, partition: dict[str, int] | None) -> list[str] | None:
        if self.options.get("split_file"):
            sl = read_split_file(self.options["split_file"])
            self.split_card = sl.card()
            return list(sl.ids)
        if self.split == "test":
            sl = load_split("celeba-test1000")
            self.split_card = sl.card()
            if partition is not None:
                wrong = [i for i in sl.ids if i in partition and partition[i] != 2]
                if wrong:
                    raise ValueError(f"celeba: list_eval_partition.txt puts {len(wrong)} ids of celeba-test1000 "
                                     f"(e.g. {wrong[0]}) outside the test partition; this is not the official file")
            return list(sl.ids)
        if self.split == "all":
            self.split_card = {"split": "all"}
            return None
        if partition is None:
            raise FileNotFoundError(f"celeba: split {self.split!r} needs list_eval_partition.txt in {self.root} "
                                    "(or Eval/); copy it from the CelebA download")
        want = PARTITION[self.split]
        self.split_card = {"split": self.split, "partition": want}
        return sorted(k for k, v in partition.items() if v == want)

    def _index(self) -> tuple[list[str], dict[str, Any]]:
        part_file = _first(self.root, ["Eval/list_eval_partition.txt", "list_eval_partition.txt",
                                       "list_eval_partition.csv"])
        partition = read_partition(part_file, self.skipped) if part_file else None
        if self.crop_rule == "dic":
            return self._index_dic()
        img_dir = find_images(self.root)
        if img_dir is None:
            raise FileNotFoundError(f"celeba: no img_align_celeba/ folder under {self.root} (looked for Img/"
                                    "img_align_celeba and img_align_celeba); unzip img_align_celeba.zip there")
        lms: dict[str, np.ndarray] = {}
        if self.crop_rule == "landmarks5":
            lm_file = _first(self.root, ["Anno/list_landmarks_align_celeba.txt", "list_landmarks_align_celeba.txt",
                                         "list_landmarks_align_celeba.csv"])
            if lm_file is None:
                raise FileNotFoundError(f"celeba: list_landmarks_align_celeba.txt not found in {self.root} (or Anno/); "
                                        "copy it from the CelebA download, or use crop=center")
            lms = read_landmarks5(lm_file, self.skipped)
            lm_name = str(lm_file)
        wanted = self._split_ids(partition)
        if wanted is None:
            wanted = sorted(p.name for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        self.split_size = len(wanted)
        order, entries = [], {}
        for name in wanted:
            path = img_dir / name
            if not path.is_file():
                self.skipped.append((str(path), "image file missing"))
                continue
            if self.crop_rule == "landmarks5" and name not in lms:
                self.skipped.append((str(path), f"no landmark annotation line for {name} in {lm_name}"))
                continue
            order.append(name)
            entries[name] = {"path": str(path), "lm5": lms.get(name)}
        return order, entries

    def _index_dic(self) -> tuple[list[str], dict[str, Any]]:
        ann = read_dic_annotations(self.options["annotations"])
        img_dir = find_images(self.root, "img_celeba")
        if img_dir is None:
            raise FileNotFoundError(f"celeba crop=dic: no img_celeba/ folder under {self.root} (or Img/); DIC crops "
                                    "the in-the-wild images: extract img_celeba.7z there")
        if self.options.get("split_file"):
            sl = read_split_file(self.options["split_file"])
            names = list(sl.ids)
            self.split_card = sl.card()
        else:
            names = list(ann)
            self.split_card = {"split": "dic-annotations", "n": len(names)}
        self.split_size = len(names)
        order, entries = [], {}
        for name in names:
            info = ann.get(name)
            path = img_dir / name
            if not isinstance(info, dict) or "bbox" not in info or "landmark" not in info:
                self.skipped.append((str(path), f"no bbox/landmark annotation for {name} in {self.options['annotations']}"))
                continue
            if not path.is_file():
                self.skipped.append((str(path), "image file missing"))
                continue
            order.append(name)
            entries[name] = {"path": str(path), "bbox": np.asarray(info["bbox"], dtype=np.int64)[:4],
                             "lm68": np.asarray(info["landmark"], dtype=np.float64).reshape(-1, 2)}
        return order, entries

    # -- cropping ---------------------------------------------------------------------------------
    def _make_hr(self, sample_id: str, entry: Any, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        path = entry["path"]
        if self.crop_rule == "dic":
            try:
                hr, lm = dic_bbox_crop(img, entry["bbox"], self.hr_size, entry["lm68"])
            except ValueError as exc:
                raise DataError(f"{path}: {exc}") from exc
            return hr, {"landmarks68": lm.astype(np.float32), "landmarks_source": "dic-annotation"}
        if (img.shape[1], img.shape[0]) != ALIGNED_SIZE:
            raise DataError(f"{path}: size {img.shape[1]}x{img.shape[0]}, expected 178x218 (img_align_celeba); "
                            "the 5-point landmarks only fit the original aligned images")
        if self.crop_rule == "center":
            return pil_resize(center_square(img), self.hr_size), {}
        box = eyes_mouth_box(entry["lm5"], self.crop_scale)
        hr, lm = crop_resize(img, box, self.hr_size, self.pad, entry["lm5"])
        return hr, {"landmarks5": lm.astype(np.float32), "box": box.as_list()}


__all__ = ["CelebA", "read_dic_annotations", "read_landmarks5", "read_partition"]
