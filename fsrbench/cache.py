"""On-disk cache for analyses of images (HR-side face analyses, SR analyses keyed by content).

Keys are (model id incl. version, SHA-256 of the image bytes, optional extra key such as a face box).
Values are small Python objects stored as individual pickle-free ``.npz`` files (numpy arrays and JSON
scalars only), written atomically, so the cache is safe to share between concurrent runs and between
processes: two writers of the same key write identical content and the last ``os.replace`` wins.

Every entry carries a SHA-256 of (entry format, model id, key, content) — :func:`entry_digest`.  An entry that
cannot be read (truncated, zeroed, junk), whose checksum does not match, or that belongs to another key (a
file copied over another image's entry) is a miss: it is deleted, counted in ``Cache.bad_entries``, and the
caller recomputes and replaces it.  Entries of an older format (no checksum) are treated the same way.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.results import atomic_file

#: version of the entry layout (part of every checksum; entries of another version are recomputed)
ENTRY_FORMAT = 2
#: what follows the array data of a ``.npy`` entry, before its 64 hex-digit checksum
ARRAY_TRAILER = b"\nfsrbench-cache-sha256:"


def default_cache_dir() -> Path:
    """``$FSRBENCH_CACHE`` or ``~/.cache/fsrbench`` (read when a Cache is made, not at import)."""
    return Path(os.environ.get("FSRBENCH_CACHE") or Path.home() / ".cache" / "fsrbench")


def image_key(img: np.ndarray) -> str:
    """Content hash of a uint8 image array (shape is part of the key)."""
    a = np.ascontiguousarray(img)
    h = hashlib.sha256()
    h.update(str(a.shape).encode())
    h.update(str(a.dtype).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def entry_digest(model_id: str, key: str, arrays: dict[str, np.ndarray], meta_json: str) -> str:
    """The checksum stored in an entry: SHA-256 of the format, model id, key, JSON part and every array
    (name, dtype, shape, bytes) in name order."""
    h = hashlib.sha256(f"fsrbench-cache/{ENTRY_FORMAT}\0{model_id}\0{key}\0{meta_json}\0".encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in s)


class Cache:
    """A directory of ``<model id>/<hh>/<key>.npz`` entries. ``None`` directory = in-memory only."""

    def __init__(self, root: str | Path | None | bool = True, mem_entries: int = 65536) -> None:
        """``root=True`` (default): :func:`default_cache_dir`; ``None``/``False``: memory only.

        ``mem_entries``: with a directory, at most this many entries are also kept in memory (least
        recently used dropped first; they stay on disk), so a long run's memory stays bounded.  A
        memory-only cache keeps everything (it has nowhere else to keep it).
        """
        if root is True:
            root = default_cache_dir()
        self.root = Path(root) if root else None
        self.mem_entries = int(mem_entries)
        self._mem: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.bad_entries = 0  # unreadable / mismatching entries found on disk (deleted, then recomputed)

    def _path(self, model_id: str, key: str, suffix: str = ".npz") -> Path:
        assert self.root is not None
        return self.root / _safe(model_id) / key[:2] / f"{key}{suffix}"

    @staticmethod
    def _write_atomic(path: Path, write: Any) -> None:
        """``write(fh)`` into a temporary file beside ``path``, then rename: readers never see a partial entry
        (not fsynced: a lost entry after a power cut is recomputed)."""
        with atomic_file(path, fsync=False) as fh:
            write(fh)

    @staticmethod
    def make_key(img_key: str, extra: Any = None) -> str:
        if extra is None:
            return img_key
        return hashlib.sha256((img_key + json.dumps(extra, sort_keys=True, default=str)).encode()).hexdigest()

    def get(self, model_id: str, key: str) -> dict[str, Any] | None:
        value = self.peek(model_id, key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def peek(self, model_id: str, key: str) -> dict[str, Any] | None:
        """Like :meth:`get` but not counted in ``hits``/``misses`` (opportunistic reads, e.g. an SR image
        that may be byte-identical to an analysed HR image)."""
        mem = self._mem.get((model_id, key))
        if mem is not None:
            self._mem.move_to_end((model_id, key))
            return mem
        if self.root is not None:
            value = self._read(self._path(model_id, key), model_id, key)
            if value is not None:
                meta = json.loads(str(value.pop("__json__")))
                value.update(meta)
                self._remember((model_id, key), value)
                return value
        return None

    def _read(self, path: Path, model_id: str, key: str) -> dict[str, Any] | None:
        """The arrays of a verified entry (``__json__`` included), or None: absent, or bad (deleted and counted)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                value = {k: z[k] for k in z.files}
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - truncated, zeroed, junk: BadZipFile, EOFError, ValueError, OSError ...
            return self._bad(path)
        digest = value.pop("__sha256__", None)
        meta_json = str(value.get("__json__", ""))
        arrays = {k: v for k, v in value.items() if k != "__json__"}
        if digest is None or str(digest) != entry_digest(model_id, key, arrays, meta_json):
            return self._bad(path)
        try:
            if meta_json and not isinstance(json.loads(meta_json), dict):
                return self._bad(path)
        except ValueError:
            return self._bad(path)
        return value

    def _bad(self, path: Path) -> None:
        self.bad_entries += 1
        try:
            path.unlink()
        except OSError:
            pass  # unwritable cache: the entry stays a miss, the put() that follows reports nothing either
        return None

    def _remember(self, k: tuple[str, str], value: dict[str, Any]) -> None:
        self._mem[k] = value
        self._mem.move_to_end(k)
        if self.root is not None:
            while len(self._mem) > self.mem_entries:
                self._mem.popitem(last=False)

    def put(self, model_id: str, key: str, value: dict[str, Any]) -> None:
        self._remember((model_id, key), value)
        if self.root is None:
            return
        arrays = {k: np.asarray(v) for k, v in value.items() if isinstance(v, np.ndarray)}
        meta_json = json.dumps({k: v for k, v in value.items() if not isinstance(v, np.ndarray)}, sort_keys=True)
        digest = entry_digest(model_id, key, arrays, meta_json)
        self._write_atomic(self._path(model_id, key),
                           lambda fh: np.savez(fh, __json__=np.array(meta_json), __sha256__=np.array(digest),
                                               **arrays))

    # -- bulky single arrays (e.g. LPIPS feature maps): one ``.npy`` per entry, read from disk, never kept in
    # memory; the checksum is a trailer after the array data (:data:`ARRAY_TRAILER` + 64 hex digits)
    def get_array(self, model_id: str, key: str) -> np.ndarray | None:
        """A cached array or None (counted in ``hits``/``misses``). A memory-only cache keeps them in memory."""
        if self.root is None:
            value = self._mem.get((model_id, key), {}).get("__array__")
        else:
            value = self._read_array(self._path(model_id, key, ".npy"), model_id, key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _read_array(self, path: Path, model_id: str, key: str) -> np.ndarray | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return self._bad(path)
        n = len(ARRAY_TRAILER) + 64
        if len(data) < n or data[-n:-64] != ARRAY_TRAILER:
            return self._bad(path)
        try:
            arr = np.lib.format.read_array(io.BytesIO(data[:-n]), allow_pickle=False)
        except Exception:  # noqa: BLE001 - a damaged array part
            return self._bad(path)
        if data[-64:].decode("ascii", "replace") != entry_digest(model_id, key, {"array": arr}, ""):
            return self._bad(path)
        return arr

    def put_array(self, model_id: str, key: str, value: np.ndarray) -> None:
        if self.root is None:
            self._mem[(model_id, key)] = {"__array__": value}
            return
        arr = np.ascontiguousarray(value)
        trailer = ARRAY_TRAILER + entry_digest(model_id, key, {"array": arr}, "").encode()

        def write(fh: Any) -> None:
            np.save(fh, arr, allow_pickle=False)
            fh.write(trailer)

        self._write_atomic(self._path(model_id, key, ".npy"), write)
