"""Test-split lists stored as data (``fsrbench/data/splits/*.txt``) and pinned by SHA-256.

``index.json`` beside the lists records, for each named split, its file, the SHA-256 of the file's bytes,
the number of ids and where the list comes from. :func:`load_split` refuses a list whose bytes do not
match its pinned hash (an edited list would silently change every result). User-supplied lists
(``split_file=FILE``) are read with :func:`read_split_file` and their hash is recorded the same way, so a
run's ``run.json`` always says exactly which images were evaluated.

Format of a list: one id per line (CelebA: ``182638.jpg``; FFHQ: ``60000``; Helen: image name without
suffix); blank lines and lines starting with ``#`` are ignored.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

SPLIT_DIR = Path(__file__).resolve().parent / "splits"


@dataclass(frozen=True)
class SplitList:
    name: str
    ids: tuple[str, ...]
    sha256: str  # of the file's bytes
    source: str  # file path
    description: str = ""

    def card(self) -> dict[str, object]:
        return {"split": self.name, "n": len(self.ids), "sha256": self.sha256, "source": self.source}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse(text: str) -> tuple[str, ...]:
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            out.append(s.split()[0])
    return tuple(out)


def index() -> dict[str, dict[str, object]]:
    with (SPLIT_DIR / "index.json").open() as fh:
        return json.load(fh)


def list_splits() -> list[str]:
    return sorted(index())


def load_split(name: str) -> SplitList:
    """A shipped split by name (e.g. ``celeba-test1000``), verified against its pinned SHA-256."""
    idx = index()
    if name not in idx:
        raise ValueError(f"unknown split list {name!r}; shipped lists: {', '.join(sorted(idx))}")
    entry = idx[name]
    path = SPLIT_DIR / str(entry["file"])
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} is missing from the installation; reinstall fsrbench")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"split list {path} has sha256 {digest[:12]}…, pinned {str(entry['sha256'])[:12]}…: "
                         "the file was modified; restore it from the repository (git checkout) or reinstall")
    ids = _parse(path.read_text())
    if len(ids) != int(entry["n"]):  # type: ignore[arg-type]
        raise ValueError(f"split list {path} has {len(ids)} ids, index.json says {entry['n']}")
    return SplitList(name, ids, digest, str(path), str(entry.get("description", "")))


def read_split_file(path: str | Path, name: str | None = None) -> SplitList:
    """A user-supplied list (one id per line); its SHA-256 is computed and recorded, not checked."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"split file {p} does not exist (from split_file=); fix the path")
    ids = _parse(p.read_text())
    if not ids:
        raise ValueError(f"split file {p} lists no ids (one image name per line expected)")
    dup = len(ids) - len(set(ids))
    if dup:
        raise ValueError(f"split file {p} lists {dup} duplicate id(s); remove them")
    return SplitList(name or p.stem, ids, file_sha256(p), str(p))
