"""Shared machinery of the on-disk dataset readers (CelebA, Helen, FFHQ, released DIC PNGs).

A reader subclasses :class:`FaceDataset` and implements ``_index()`` (list the split's ids and what each
needs, recording every unusable entry in ``self.skipped`` as ``(file, reason)``) and ``_make_hr(id, img)``
(the protocol's 128×128 crop). This module adds what they share:

* root resolution (``data_root`` / ``arg`` / config file, :mod:`fsrbench.data.config`);
* image reading through :func:`fsrbench.imageio.read_image`, with a note when the file was grayscale,
  palette, RGBA or 16-bit and had to be converted (recorded in the sample's ``meta["converted"]``);
* :meth:`FaceDataset.check`: a full validation pass (reads every image of the split) returning a
  :class:`CheckReport` with counts, problems (file, reason, fix) and the hashes a run would record;
* ``fingerprint()`` with the split's hash, the crop rule and its parameters.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from fsrbench.api import DataError, Dataset, Sample
from fsrbench.data.config import resolve_root
from fsrbench.imageio import read_image

_CONVERTED = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "PA": "palette+alpha",
              "RGBA": "RGBA", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit int",
              "F": "float", "CMYK": "CMYK", "1": "1-bit", "YCbCr": "YCbCr"}


def image_mode(path: str | Path) -> str | None:
    """PIL mode of an image file (header only), None if it cannot be opened."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return str(im.mode)
    except Exception:  # noqa: BLE001 - any failure means "unknown"; read_image reports the reason
        return None


def read_rgb(path: str | Path) -> tuple[np.ndarray, str | None]:
    """uint8 RGB image and a note naming the conversion applied (None when the file was plain RGB)."""
    img = read_image(path)
    mode = image_mode(path)
    return img, (f"{_CONVERTED.get(mode, mode)} converted to RGB" if mode and mode != "RGB" else None)


@dataclass
class Problem:
    file: str
    reason: str
    fix: str = ""


@dataclass
class CheckReport:
    dataset: str
    root: str
    split: str
    listed: int = 0  # ids named by the split / annotation
    usable: int = 0  # read and cropped without error
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # converted images etc. (still usable)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    read: bool = True

    @property
    def ok(self) -> bool:
        return self.usable > 0


def _fix_for(reason: str) -> str:
    r = reason.lower()
    if "missing" in r or "does not exist" in r or "not found" in r:
        return "restore the file from the original download (or remove its id from the split list)"
    if "truncated" in r or "unreadable" in r or "not an image" in r or "empty file" in r:
        return "re-download or re-extract this file; it is damaged"
    if "annotation" in r or "landmark" in r:
        return "re-extract the annotation files from the original download"
    if "size" in r or "expected" in r:
        return "use the original, unresized files of this dataset"
    return "see docs/datasets.md"


class FaceDataset(Dataset):
    """Base of the readers: subclasses set ``name`` and implement ``_index`` and ``_make_hr``."""

    splits: tuple[str, ...] = ("test",)
    default_split: str = "test"  # the evaluation split (``fsrbench run``, ``data check``)
    #: splits that hold test images: ``fsrbench train`` refuses them unless told explicitly (--allow-test-split)
    test_splits: tuple[str, ...] = ("test",)
    crop_rule: str = ""
    #: what a user must download and where it goes (printed by ``fsrbench data check`` when the data is not usable)
    download: str = ""
    #: images the split holds (its list, present or not; set by ``_index``): a run on fewer is marked partial
    split_size: int | None = None

    def __init__(self, arg: str | None = None, data_root: str | None = None, split: str | None = None,
                 protocol: Any = None, default_split: str | None = None, **options: Any) -> None:
        super().__init__(arg, **options)
        self.root, extra = resolve_root(self.name, data_root, arg, options.get("config"), split=split)
        entry_split = extra.pop("split", None)
        entry_list = extra.pop("split_file", None)
        for k, v in extra.items():  # config-file options; explicit options win
            self.options.setdefault(k, v)
        if split:
            source = "the dataset spec or --split"
        elif entry_split:
            source = f"`split:` of {self.name} in the config file"
        elif default_split:
            source = "the command's default"
        else:
            source = "the dataset's default"
        split = split or entry_split or default_split or self.default_split
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r} (from {source}); choose one of "
                             f"{', '.join(self.splits)}, e.g. --datasets {self.name}@{self.splits[0]}")
        if entry_list and "split_file" not in self.options and (entry_split or self.default_split) == split:
            self.options["split_file"] = entry_list  # a config entry's list belongs to its own split
        self.split = split
        self.protocol = protocol
        self.split_card: dict[str, Any] = {}
        self._entries: dict[str, Any] | None = None
        self._order: list[str] = []

    @property
    def display_name(self) -> str:
        """``celeba`` for the default split, ``celeba@test-full`` for another; the root is not part of the name
        (the fingerprint in run.json records it), so results from two machines name their cells alike."""
        return self.name if self.split == self.default_split else f"{self.name}@{self.split}"

    @property
    def is_test_split(self) -> bool:
        """True when this split holds test images (``fsrbench train`` refuses it unless told explicitly)."""
        return self.split in self.test_splits

    # -- subclass hooks ---------------------------------------------------------------------------
    def _index(self) -> tuple[list[str], dict[str, Any]]:
        """Ordered ids and {id: entry}; append unusable inputs to ``self.skipped``."""
        raise NotImplementedError

    def _make_hr(self, sample_id: str, entry: Any, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def _path(self, entry: Any) -> Path:
        return Path(entry["path"] if isinstance(entry, dict) else entry)

    def crop_params(self) -> dict[str, Any]:
        return {}

    # -- Dataset API ------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._entries is None:
            order, entries = self._index()
            limit = self.options.get("limit")
            if limit:
                order = order[: int(limit)]
            self._order, self._entries = order, entries

    def ids(self) -> list[str]:
        self._ensure()
        return list(self._order)

    def entry(self, sample_id: str) -> Any:
        self._ensure()
        assert self._entries is not None
        if sample_id not in self._entries:
            raise KeyError(f"{self.display_name}: no id {sample_id!r} in split {self.split!r}")
        return self._entries[sample_id]

    def load(self, sample_id: str) -> Sample:
        entry = self.entry(sample_id)
        path = self._path(entry)
        img, note = read_rgb(path)
        hr, meta = self._make_hr(sample_id, entry, img)
        if hr.shape != (self.hr_size, self.hr_size, 3) or hr.dtype != np.uint8:
            raise DataError(f"{path}: crop produced {hr.shape} {hr.dtype}, expected ({self.hr_size},{self.hr_size},3) uint8")
        meta = dict(meta, path=str(path))
        if note:
            meta["converted"] = note
        return Sample(sample_id, hr, meta)

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        fp.update(split=self.split, split_list=self.split_card, crop=self.crop_rule, crop_params=self.crop_params(),
                  skipped=len(self.skipped))
        blob = json.dumps(fp, sort_keys=True, default=str).encode()
        fp["sha256"] = hashlib.sha256(blob).hexdigest()
        return fp

    # -- validation -------------------------------------------------------------------------------
    def check(self, read: bool = True, progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> CheckReport:
        """Validate the split: every listed file and annotation, and (``read=True``) every image."""
        from fsrbench.protocols import get_protocol

        ids = self.ids()
        rep = CheckReport(self.name, str(self.root), self.split, read=read)
        rep.problems = [Problem(f, r, _fix_for(r)) for f, r in self.skipped]
        rep.listed = len(ids) + len(self.skipped)
        usable = 0
        it = progress(ids) if progress else ids
        for sid in it:
            if not read:
                usable += 1
                continue
            try:
                s = self.load(sid)
            except DataError as exc:
                f = str(self._path(self.entry(sid)))
                msg = str(exc).removeprefix(f"{f}: ")
                rep.problems.append(Problem(f, msg, _fix_for(msg)))
                continue
            usable += 1
            if "converted" in s.meta:
                rep.notes.append(Problem(s.meta["path"], s.meta["converted"], "used after conversion"))
        rep.usable = usable
        rep.fingerprint = self.fingerprint()
        proto = get_protocol(self.protocol)
        rep.protocol = {"id": proto.id, "sha256": proto.sha256}
        return rep
