"""Released LR/HR test PNGs (as distributed by DIC) as a dataset: ``--datasets released:/path/Helen``.

DIC's README distributes its CelebA (1,000) and Helen (50) test sets as ready-made PNG folders, used by
DIC's test options as ``.../Helen/HR`` and ``.../Helen/LR`` (128×128 HR, 16×16 PIL-bicubic LR). Using
them reproduces DIC's exact test images, which the raw-dataset readers cannot (DIC's crop boxes and test
lists are unpublished). Layout::

    DIR/HR/*.png        128×128 (required)
    DIR/LR/*.png        16×16 or 32×32, same names (optional; see ``lr()``)

Pinning: every file is hashed (SHA-256) and the sorted ``name sha256`` manifest's own hash is part of
``fingerprint()``, so a result records exactly which bytes were evaluated. ``manifest=FILE``
(``sha256sum`` format: ``<hex>  HR/name.png``) makes the reader verify the files: a file whose hash
differs from the pin, or is missing, is skipped with the reason. ``fsrbench data check released:DIR
--write-manifest FILE`` writes such a manifest from a trusted copy. (fsrbench ships no manifest of DIC's
files: nobody here has DIC's archive to hash.)

``annotations=FILE``: DIC's test pickle (``annotations/CelebA_test.pkl`` / ``Helen_test.pkl``: PNG name
-> 68 landmarks in HR pixels) adds ``meta["landmarks68"]``.

Wrong-size HR files are skipped with the reason. The harness makes LR from HR with the protocol's
PIL-bicubic degrader by default; ``lr(id, scale)`` returns the released LR when it exists at that scale
(for a runner option that evaluates on the released LR files).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import DataError
from fsrbench.data.base import FaceDataset, read_rgb
from fsrbench.data.splits import file_sha256, read_split_file


def read_manifest(path: str | Path) -> dict[str, str]:
    """``sha256sum``-style file -> {relative path: hex digest}."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"manifest {p} does not exist (from manifest=); fix the path")
    out: dict[str, str] = {}
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(f"{p}:{i}: expected `<sha256>  <relative path>`, got {line[:80]!r}")
        out[parts[1].strip().lstrip("*")] = parts[0].lower()
    return out


class ReleasedPairs(FaceDataset):
    name = "released"
    description = "released:<dir> — DIC-style test PNGs (DIR/HR, DIR/LR), pinned by sha256"
    splits = ("test",)
    download = (
        "DIC's released test images (the Google/Baidu-Drive archive linked in DIC's README): unpack it so that "
        "DIR/HR/*.png (128x128) and optionally DIR/LR/*.png exist for each set (e.g. .../Helen), then use "
        "--datasets released:DIR.")
    crop_rule = "none (released 128x128 PNGs)"

    def __init__(self, arg: str | None = None, data_root: str | None = None, split: str | None = None,
                 protocol: Any = None, **options: Any) -> None:
        super().__init__(arg, data_root, split, protocol, **options)
        self.hr_dir = self.root / "HR"
        if not self.hr_dir.is_dir():
            raise FileNotFoundError(f"released: {self.hr_dir} is not a directory; point at the folder that holds "
                                    "DIC's HR/ and LR/ sub-folders (e.g. .../Helen)")
        self.lr_dir = self.root / "LR"
        self.hashes: dict[str, str] = {}
        self._landmarks: dict[str, np.ndarray] = {}

    @property
    def display_name(self) -> str:
        return f"released:{self.root.name}"

    def crop_params(self) -> dict[str, Any]:
        self._ensure()
        blob = "\n".join(f"{k} {v}" for k, v in sorted(self.hashes.items())).encode()
        return {"files_sha256": hashlib.sha256(blob).hexdigest(), "n_files": len(self.hashes),
                "manifest": str(self.options.get("manifest")) if self.options.get("manifest") else None}

    def _index(self) -> tuple[list[str], dict[str, Any]]:
        pins = read_manifest(self.options["manifest"]) if self.options.get("manifest") else None
        names = sorted(p.name for p in self.hr_dir.iterdir() if p.suffix.lower() == ".png")
        if self.options.get("split_file"):
            sl = read_split_file(self.options["split_file"])
            self.split_card = sl.card()
            wanted = list(sl.ids)
        else:
            wanted = names
            self.split_card = {"split": "all files in HR/"}
        if self.options.get("annotations"):
            from fsrbench.data.celeba import read_dic_annotations

            for k, v in read_dic_annotations(self.options["annotations"]).items():
                lm = v.get("landmark") if isinstance(v, dict) else v
                self._landmarks[str(k).replace(".jpg", ".png")] = np.asarray(lm, dtype=np.float64).reshape(-1, 2)
        self.split_size = len(wanted)
        order, entries = [], {}
        for name in wanted:
            path = self.hr_dir / name
            if not path.is_file():
                self.skipped.append((str(path), "image file missing"))
                continue
            digest = file_sha256(path)
            if pins is not None:
                rel = f"HR/{name}"
                if rel not in pins:
                    self.skipped.append((str(path), f"not pinned in manifest {self.options['manifest']}"))
                    continue
                if pins[rel] != digest:
                    self.skipped.append((str(path), f"sha256 {digest[:12]}… differs from the pinned {pins[rel][:12]}…"))
                    continue
            self.hashes[f"HR/{name}"] = digest
            lr_path = self.lr_dir / name
            if lr_path.is_file():
                self.hashes[f"LR/{name}"] = file_sha256(lr_path)
            order.append(name)
            entries[name] = {"path": str(path), "lr": str(lr_path) if lr_path.is_file() else None}
        if pins is not None:
            missing = sorted(k for k in pins if k.startswith("HR/") and k[3:] not in entries and k[3:] in wanted
                             and not (self.hr_dir / k[3:]).is_file())
            for k in missing:
                if not any(f == str(self.root / k) for f, _ in self.skipped):
                    self.skipped.append((str(self.root / k), "pinned file missing"))
        return order, entries

    def _make_hr(self, sample_id: str, entry: Any, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        if img.shape[:2] != (self.hr_size, self.hr_size):
            raise DataError(f"{entry['path']}: size {img.shape[1]}x{img.shape[0]}, expected "
                            f"{self.hr_size}x{self.hr_size} (released HR PNGs are not resized)")
        meta: dict[str, Any] = {"sha256": self.hashes.get(f"HR/{sample_id}")}
        if sample_id in self._landmarks:
            meta["landmarks68"] = self._landmarks[sample_id].astype(np.float32)
            meta["landmarks_source"] = "dic-annotation"
        if entry["lr"]:
            meta["lr_path"] = entry["lr"]
        return img, meta

    def lr(self, sample_id: str, scale: int) -> np.ndarray | None:
        """The released LR image when it exists at ``hr_size // scale``, else None."""
        entry = self.entry(sample_id)
        if not entry["lr"]:
            return None
        img, _ = read_rgb(entry["lr"])
        return img if img.shape[:2] == (self.hr_size // scale,) * 2 else None

    def manifest_lines(self) -> list[str]:
        self._ensure()
        return [f"{v}  {k}" for k, v in sorted(self.hashes.items())]
