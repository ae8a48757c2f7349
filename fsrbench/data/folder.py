"""``folder:<dir>`` — any directory of face images as a test set.

Every entry directly inside ``dir`` whose name looks like an image (:data:`fsrbench.imageio.IMAGE_LIKE_SUFFIXES`,
hidden dot-names excepted) is an image of the set, in sorted file-name order; the id is the file name. An entry
that cannot be used — a directory named ``x.png``, a FIFO, a dangling or looping symbolic link, an unreadable,
animated or damaged file, a float image with NaN/inf — is not skipped silently: loading it raises DataError with
the reason, so it appears as a failed image in ``per_image.csv``, ``metrics.json``, the log and
``fsrbench data check``. HR = the image itself when it is already 128×128, otherwise its centre square resized to
128 with the canonical PIL bicubic resizer (or, with option ``crop=detect``, the face-detection crop of
:mod:`fsrbench.data.crops` when available); the EXIF orientation is applied first. An optional ``labels.csv``
with a ``filename`` column adds its other columns (e.g. ``emotion``, ``identity``) to each sample's metadata.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from fsrbench.api import DataError, Dataset, Sample
from fsrbench.imageio import IMAGE_LIKE_SUFFIXES, IMAGE_SUFFIXES, center_square, pil_resize, read_image


class FolderDataset(Dataset):
    name = "folder"
    description = "folder:<dir> — the images in a directory (centre-square crop, PIL bicubic to 128)"

    def __init__(self, arg: str | None = None, **options: Any) -> None:
        super().__init__(arg, **options)
        if not arg:
            raise ValueError("the folder dataset needs a directory: --datasets folder:/path/to/images")
        self.root = Path(arg).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"folder dataset: {self.root} is not a directory")
        try:
            names = [e.name for e in os.scandir(self.root)]
        except OSError as exc:
            raise ValueError(f"folder dataset: cannot list {self.root} ({exc.strerror or exc}); fix its permissions "
                             "(it needs read and execute rights)") from exc
        self._ids = sorted(n for n in names if Path(n).suffix.lower() in IMAGE_LIKE_SUFFIXES and not n.startswith("."))
        if not self._ids:
            raise FileNotFoundError(f"folder dataset: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.root}")
        self.labels = self._read_labels()
        self.crop = options.get("crop", "center")

    def _read_labels(self) -> dict[str, dict[str, str]]:
        path = self.root / "labels.csv"
        if not path.is_file():
            return {}
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "filename" not in reader.fieldnames:
                self.skipped.append((str(path), "labels.csv has no 'filename' column; labels ignored"))
                return {}
            return {row["filename"]: {k: v for k, v in row.items() if k != "filename" and v not in (None, "")}
                    for row in reader}

    def ids(self) -> list[str]:
        return list(self._ids)

    def load(self, sample_id: str) -> Sample:
        path = self.root / sample_id
        img = read_image(path)
        if min(img.shape[:2]) < 8:
            raise DataError(f"{path}: image too small ({img.shape[1]}x{img.shape[0]}) to be a face crop")
        if self.crop == "detect":
            from fsrbench.data.crops import detect_crop  # noqa: PLC0415 (optional, datasets issue)

            hr = detect_crop(img, self.hr_size)
        elif img.shape[:2] == (self.hr_size, self.hr_size):
            hr = img
        else:
            hr = pil_resize(center_square(img), self.hr_size)
        return Sample(sample_id, hr, dict(self.labels.get(sample_id, {}), path=str(path)))
