"""Checkpoints of the training engine: writing weights, state and cards; resuming.

A run directory holds, per checkpoint ``step_00001000``:

* ``step_00001000.safetensors`` — model weights only (shared tensors de-duplicated as
  ``safetensors.torch.save_model`` does; byte-deterministic, :func:`write_safetensors`), what evaluation loads;
* ``step_00001000.state.pt``   — optimiser, scheduler, GradScaler, RNG states (per rank) and the loop
  position, saved with ``torch.save`` using only tensors/numbers/strings/lists/dicts/tuples so that
  ``torch.load(weights_only=True)`` reads it;
* ``step_00001000.card.json``  — the weight card: method, scale, step, config hash (+ the resolved config),
  dataset fingerprint, protocol id/hash, validation metrics, SHA-256 of the weights file.

plus ``best.safetensors`` / ``best.card.json`` (best validation score so far; never pruned).  Every file is
written to a temporary name, fsynced and ``os.replace``d; the card is written last, so a checkpoint exists
only when its card does.  ``keep_last`` step checkpoints are kept.

Reading checkpoints for evaluation (finding, verifying, loading: ``load_for_eval`` and friends) is
:mod:`fsrbench.weights`; its names are re-exported here for older imports.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from fsrbench._version import __version__
from fsrbench.results import atomic_file, atomic_path, atomic_write_text, run_lock
# the reading side moved to fsrbench.weights (evaluation uses it); these names stay importable from here
from fsrbench.errors import UnsafeFile
from fsrbench.weights import (CARD_FORMAT, DEFAULT_CHECKPOINT_DIR, WEIGHTS_GROUP, find_cards,  # noqa: F401
                              load_for_eval, load_weights, read_card, safe_torch_load, select_card, sha256_file,
                              train_command, verify, weight_package_dirs, weights_path)

STEP_RE = re.compile(r"^step_(\d{8})\.card\.json$")


# ------------------------------------------------------------------------------------------------
# small file helpers
# ------------------------------------------------------------------------------------------------
def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` into memory first, then one atomic write: a full disk is a plain OSError naming ``path``
    (torch's own writer reports it as "enforce fail at inline_container.cc")."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_file(path) as fh:
        fh.write(buf.getbuffer())


def save_weights(model: torch.nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> str:
    """Write the model's weights as safetensors atomically, with deterministic bytes (:func:`write_safetensors`:
    the same weights and metadata give the same file in every process, so card SHA-256s and cell keys are
    stable); returns the file's SHA-256.  Shared tensors are de-duplicated as ``safetensors.torch.save_model``
    does (one name kept per shared storage, each removed name recorded in the metadata as removed -> kept), so
    ``safetensors.torch.load_model`` reads the file back."""
    from safetensors.torch import _remove_duplicate_names

    state = dict(model.state_dict())
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    for kept, removed in _remove_duplicate_names(state).items():
        for name in removed:
            meta.setdefault(name, kept)
            del state[name]
    return write_safetensors({k: v.contiguous() for k, v in state.items()}, path, meta)


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                      metadata: Mapping[str, str] | None = None) -> str:
    """Write ``tensors`` as a safetensors file with deterministic bytes (tensors in name order, header JSON
    with sorted keys), atomically; returns the file's SHA-256. The same tensors and metadata always give
    the same file (``safetensors.torch.save_file`` orders ``__metadata__`` differently between processes)."""
    dtypes = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in dtypes:
            raise ValueError(f"{name}: dtype {t.dtype} cannot be stored in safetensors")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""  # 0-dim: reshape first
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    h = hashlib.sha256()
    with atomic_file(path) as fh:
        for chunk in (len(head).to_bytes(8, "little"), head, *blobs):
            fh.write(chunk)
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path, is_main: bool = True, share: Any = lambda err: err) -> Iterator[None]:
    """Hold the training directory's lock (:func:`fsrbench.results.run_lock`, the lock of ``fsrbench run``) for the
    whole training: a second ``fsrbench train`` into the same ``--out`` is refused instead of overwriting the
    first one's checkpoints.  Rank 0 takes it; ``share(err)`` hands its refusal to every rank (DDP)."""
    with contextlib.ExitStack() as stack:
        err = None
        if is_main:
            try:
                stack.enter_context(run_lock(Path(run_dir), what="fsrbench train", option="--out"))
            except ValueError as exc:
                err = str(exc)
        err = share(err)
        if err:
            raise ValueError(err)
        yield


def unwrap(model: Any) -> Any:
    """The bare module inside DistributedDataParallel / torch.compile (or the model itself)."""
    from fsrbench.train import unwrap as _unwrap

    return _unwrap(model)


# ------------------------------------------------------------------------------------------------
# RNG state (weights_only-safe)
# ------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA) RNG states as tensors / ints / tuples."""
    np_state = np.random.get_state()
    py = random.getstate()
    return {
        "python": (int(py[0]), tuple(int(x) for x in py[1]), py[2]),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------
# writing checkpoints
# ------------------------------------------------------------------------------------------------
def step_name(step: int) -> str:
    return f"step_{int(step):08d}"


def make_card(*, method: str, scale: int, step: int, kind: str, weights_file: str, sha256: str,
              config: Mapping[str, Any], config_sha256: str, dataset: Mapping[str, Any] | None,
              protocol: Mapping[str, Any] | None, val_metrics: Mapping[str, Any] | None,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": CARD_FORMAT,
        "method": method,
        "scale": int(scale),
        "kind": kind,  # "step" | "best"
        "step": int(step),
        "weights": weights_file,
        "sha256": sha256,
        "config_sha256": config_sha256,
        "config": dict(config),
        "dataset": dict(dataset or {}),
        "protocol": dict(protocol or {}),
        "val_metrics": dict(val_metrics or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "created_ns": time.time_ns(),
        "versions": {"fsrbench": __version__, "torch": torch.__version__},
        **dict(extra or {}),
    }


def write_checkpoint(run_dir: str | Path, *, step: int, model: torch.nn.Module, state: Mapping[str, Any],
                     card: dict[str, Any], keep_last: int) -> Path:
    """Write weights + state + card for ``step`` (card last), prune old step checkpoints; returns the card path."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    base = step_name(step)
    card_path = d / f"{base}.card.json"
    try:
        atomic_torch_save(dict(state), d / f"{base}.state.pt")
        digest = save_weights(unwrap(model), d / f"{base}.safetensors",
                              {"method": str(card["method"]), "scale": str(card["scale"]), "step": str(step)})
        card = dict(card, weights=f"{base}.safetensors", sha256=digest, kind="step", step=int(step))
        atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True, default=str))
    except BaseException:  # e.g. a full disk: no half checkpoint stays behind (the earlier ones are intact)
        if not card_path.is_file():
            for suffix in (".safetensors", ".state.pt"):
                Path(str(d / base) + suffix).unlink(missing_ok=True)
        raise
    prune(d, keep_last)
    return card_path


def write_best(run_dir: str | Path, model: torch.nn.Module, card: dict[str, Any]) -> Path:
    """Write ``best.safetensors`` + ``best.card.json`` (kind=best) from the current weights."""
    d = Path(run_dir)
    digest = save_weights(unwrap(model), d / "best.safetensors",
                          {"method": str(card["method"]), "scale": str(card["scale"]), "step": str(card["step"])})
    best = dict(card, weights="best.safetensors", sha256=digest, kind="best")
    path = d / "best.card.json"
    atomic_write_text(path, json.dumps(best, indent=2, sort_keys=True, default=str))
    return path


def step_cards(run_dir: str | Path) -> list[tuple[int, Path]]:
    d = Path(run_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = STEP_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def prune(run_dir: str | Path, keep_last: int) -> None:
    cards = step_cards(run_dir)
    for step, card in cards[:-keep_last] if keep_last > 0 else []:
        base = Path(run_dir) / step_name(step)
        card.unlink(missing_ok=True)  # card first: the checkpoint stops existing before its files go
        for suffix in (".safetensors", ".state.pt"):
            Path(str(base) + suffix).unlink(missing_ok=True)


def remove_after(run_dir: str | Path, step: int) -> None:
    """Delete step checkpoints newer than ``step`` (a resumed run overwrites its future)."""
    for s, card in step_cards(run_dir):
        if s > step:
            card.unlink(missing_ok=True)
            for suffix in (".safetensors", ".state.pt"):
                Path(str(Path(run_dir) / step_name(s)) + suffix).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# reading checkpoints
# ------------------------------------------------------------------------------------------------
def latest_resumable(run_dir: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The newest step checkpoint of a run whose card, weights and state all exist and verify."""
    for step, card_path in reversed(step_cards(run_dir)):
        try:
            card = read_card(card_path)
            verify(card)
        except (ValueError, FileNotFoundError):
            continue
        state = Path(run_dir) / f"{step_name(step)}.state.pt"
        if state.is_file():
            return card, state
    return None


def load_state(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's training state (``torch.load(weights_only=True)``); a file holding other Python objects or
    an unreadable one raises :class:`fsrbench.errors.UnsafeFile` (a ValueError and an UnpicklingError) naming the
    file and how to resume without it."""
    p = Path(path)
    stem = p.name.removesuffix(".state.pt")
    state = safe_torch_load(p, f"Delete {stem}.card.json (with {stem}.safetensors and {p.name}) to resume from the "
                               f"checkpoint before it, or start a new run with --out NEW_DIR.", map_location)
    if not isinstance(state, dict) or not {"step", "epoch", "offset", "optimizer"} <= set(state):
        raise UnsafeFile(f"{p}: not a training state written by fsrbench train (keys missing). Delete {stem}.card.json "
                         "to resume from the checkpoint before it, or start a new run with --out NEW_DIR.")
    return state
