"""Checkpoints of the training engine, and how evaluation finds trained weights.

A run directory holds, per checkpoint ``step_00001000``:

* ``step_00001000.safetensors`` — model weights only (``safetensors.torch.save_model``: shared tensors
  de-duplicated), what evaluation loads;
* ``step_00001000.state.pt``   — optimiser, scheduler, GradScaler, RNG states (per rank) and the loop
  position, saved with ``torch.save`` using only tensors/numbers/strings/lists/dicts/tuples so that
  ``torch.load(weights_only=True)`` reads it;
* ``step_00001000.card.json``  — the weight card: method, scale, step, config hash (+ the resolved config),
  dataset fingerprint, protocol id/hash, validation metrics, SHA-256 of the weights file.

plus ``best.safetensors`` / ``best.card.json`` (best validation score so far; never pruned).  Every file is
written to a temporary name, fsynced and ``os.replace``d; the card is written last, so a checkpoint exists
only when its card does.  ``keep_last`` step checkpoints are kept.

:func:`load_for_eval` is what :meth:`fsrbench.api.TrainableMethod.setup` calls: explicit weights, or the best
(else latest) card for (method, scale) under ``options["checkpoint_dir"]`` (default ``$FSRBENCH_CHECKPOINTS``
or ``./checkpoints``), SHA-256-verified, loaded into ``method.build_model(scale, card["config"])``.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from fsrbench.api import Unavailable

CARD_FORMAT = "fsrbench-weights/1"
STEP_RE = re.compile(r"^step_(\d{8})\.card\.json$")
DEFAULT_CHECKPOINT_DIR = "checkpoints"


# ------------------------------------------------------------------------------------------------
# small file helpers
# ------------------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tmp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(p)
    try:
        tmp.write_text(text, encoding="utf-8")
        _fsync_replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    p = Path(path)
    tmp = _tmp_path(p)
    try:
        torch.save(obj, tmp)
        _fsync_replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_weights(model: torch.nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> str:
    """Write the model's weights as safetensors atomically; returns the file's SHA-256."""
    from safetensors.torch import save_model

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(p)
    try:
        save_model(model, str(tmp), metadata=dict(metadata or {}))
        digest = sha256_file(tmp)
        _fsync_replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


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
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(p)
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as fh:
            for chunk in (len(head).to_bytes(8, "little"), head, *blobs):
                fh.write(chunk)
                h.update(chunk)
        _fsync_replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h.hexdigest()


def unwrap(model: Any) -> Any:
    """The bare module inside DistributedDataParallel (or the model itself)."""
    return getattr(model, "module", model)


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
    import fsrbench

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
        "versions": {"fsrbench": getattr(fsrbench, "__version__", "?"), "torch": torch.__version__},
        **dict(extra or {}),
    }


def write_checkpoint(run_dir: str | Path, *, step: int, model: torch.nn.Module, state: Mapping[str, Any],
                     card: dict[str, Any], keep_last: int) -> Path:
    """Write weights + state + card for ``step`` (card last), prune old step checkpoints; returns the card path."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    base = step_name(step)
    atomic_torch_save(dict(state), d / f"{base}.state.pt")
    digest = save_weights(unwrap(model), d / f"{base}.safetensors",
                          {"method": str(card["method"]), "scale": str(card["scale"]), "step": str(step)})
    card = dict(card, weights=f"{base}.safetensors", sha256=digest, kind="step", step=int(step))
    card_path = d / f"{base}.card.json"
    atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True, default=str))
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
def read_card(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        card = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: unreadable weight card ({exc})") from exc
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{p}: not an fsrbench weight card (format {card.get('format')!r})")
    card["_path"] = str(p)
    return card


def weights_path(card: Mapping[str, Any]) -> Path:
    return Path(card["_path"]).parent / card["weights"]


def verify(card: Mapping[str, Any]) -> Path:
    """The weights file of ``card`` after checking its SHA-256 (ValueError naming the file on mismatch)."""
    w = weights_path(card)
    if not w.is_file():
        raise FileNotFoundError(f"{card['_path']}: its weights file {w} is missing")
    digest = sha256_file(w)
    if digest != card["sha256"]:
        raise ValueError(f"{w}: SHA-256 {digest[:16]}… does not match its card {card['_path']} "
                         f"({str(card['sha256'])[:16]}…); the file is corrupt or was replaced — re-copy or retrain")
    return w


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
    return torch.load(path, map_location=map_location, weights_only=True)


def load_weights(model: torch.nn.Module, path: str | Path, device: Any = "cpu") -> None:
    """Load safetensors weights (never a pickle: a pickled checkpoint could run code when loaded)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from fsrbench.api import Unavailable

    try:
        load_model(model, str(path), strict=True, device=str(device))
    except SafetensorError as exc:
        raise Unavailable(f"{path} is not a safetensors file ({exc}); fsrbench loads weights only from "
                          f"safetensors — convert a trusted PyTorch state_dict with "
                          f"safetensors.torch.save_file(state_dict, 'weights.safetensors')") from exc


def find_cards(root: str | Path, method: str, scale: int | None) -> list[dict[str, Any]]:
    """All weight cards under ``root`` (recursively) for (method, scale); ``scale=None``: any scale."""
    r = Path(root)
    if not r.is_dir():
        return []
    out = []
    for p in sorted(r.rglob("*.card.json")):
        try:
            card = read_card(p)
        except ValueError:
            continue
        if card.get("method") == method and (scale is None or int(card.get("scale", -1)) == int(scale)):
            out.append(card)
    return out


def select_card(cards: list[dict[str, Any]], prefer: str = "best") -> dict[str, Any] | None:
    """``prefer="best"``: the newest best card, else the newest step card; ``"latest"``: highest step of the
    newest run.  Newest = written last (``created_ns``)."""
    if not cards:
        return None
    best = [c for c in cards if c.get("kind") == "best"]
    steps = [c for c in cards if c.get("kind") != "best"]
    newest = lambda cs: max(cs, key=lambda c: (int(c.get("created_ns", 0)), int(c.get("step", 0))))  # noqa: E731
    if prefer == "best" and best:
        return newest(best)
    return newest(steps or best)


#: entry-point group of installable weight packages (fsrbench's own: ``fsrbench-weights`` in ``weights/``)
WEIGHTS_GROUP = "fsrbench.weights"


def weight_package_dirs() -> list[Path]:
    """Folders of the installed weight packages (entry points of :data:`WEIGHTS_GROUP`, each naming a folder
    of ``*.card.json`` + ``*.safetensors``), in entry-point name order; a broken package is skipped."""
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=WEIGHTS_GROUP), key=lambda e: e.name):
        try:
            root = ep.load()
            root = root() if callable(root) else root
        except Exception:  # noqa: BLE001 - a broken weights package must not stop evaluation
            continue
        if Path(root).is_dir():
            out.append(Path(root))
    return out


def train_command(method: str, scale: int) -> str:
    return f"fsrbench train {method} --scale {scale} --dataset ..."


def load_for_eval(method: Any, scale: int, device: Any = "cpu", weights: str | None = None,
                  options: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Build ``method``'s model for ``scale`` with trained weights; returns ``(model in eval mode, card)``.

    ``weights``: a ``.safetensors`` file (its ``.card.json`` next to it is used and verified when present), a
    ``.card.json`` file, or a directory searched like the checkpoint directory.  Without ``weights``, the
    checkpoint directory ``options["checkpoint_dir"]`` (default ``$FSRBENCH_CHECKPOINTS`` or
    ``./checkpoints``) is searched for (method, scale), then the installed weight packages
    (:func:`weight_package_dirs`, unless ``options["reference_weights"]`` is False); ``options["checkpoint"]``
    = ``best`` (default) or ``latest``.  Raises :class:`Unavailable` with the training command when nothing is found.
    """
    opts = dict(options or {})
    name = getattr(method, "name", "") or type(method).__name__
    # An any-scale method (one model for every LR size, e.g. UFVNet) is trained under some --scale but its
    # weights serve every scale: its cards are looked up at ``scale`` first, then at any scale.
    any_scale = bool(getattr(method, "any_scale", False))

    def lookup(root: Path) -> dict[str, Any] | None:  # one scan of the directory
        cards = find_cards(root, name, None if any_scale else scale)
        exact = [c for c in cards if int(c.get("scale", -1)) == int(scale)]
        return select_card(exact, prefer) or (select_card(cards, prefer) if any_scale else None)

    card: dict[str, Any] | None = None
    wfile: Path | None = None
    prefer = str(opts.get("checkpoint", "best"))
    if weights:
        wp = Path(weights).expanduser()
        if wp.is_dir():
            card = lookup(wp)
            if card is None:
                raise Unavailable(f"no trained weights for {name} x{scale} under {wp}; "
                                  f"train with: {train_command(name, scale)} --out {wp}")
        elif wp.name.endswith(".card.json"):
            card = read_card(wp)
        elif wp.is_file():
            side = wp.with_name(wp.name[: -len(wp.suffix)] + ".card.json") if wp.suffix else None
            if side is not None and side.is_file():
                card = read_card(side)
                if Path(card["weights"]).name != wp.name:
                    card = None
            if card is None:
                wfile = wp
        else:
            raise FileNotFoundError(f"--weights {name}={wp}: no such file or directory")
    else:
        # the user's own checkpoints first, then the installed weight packages (shipped reference weights)
        root = Path(opts.get("checkpoint_dir") or os.environ.get("FSRBENCH_CHECKPOINTS") or DEFAULT_CHECKPOINT_DIR)
        searched = [root] + ([] if opts.get("reference_weights") is False else weight_package_dirs())
        for where in searched:
            card = lookup(where)
            if card is not None:
                break
        if card is None:
            raise Unavailable(f"no trained weights for {name} x{scale} (searched {', '.join(map(str, searched))}); "
                              f"train with: {train_command(name, scale or 8)}")
    if card is not None:
        if card.get("method") != name or (int(card.get("scale", -1)) != int(scale) and not any_scale):
            raise ValueError(f"{card['_path']}: weights are for {card.get('method')} x{card.get('scale')}, "
                             f"not {name} x{scale}")
        wfile = verify(card)
        config = card.get("config") or {}
    else:
        from fsrbench.train.config import resolve_config

        config = resolve_config(method, "default")
        card = {"format": None, "method": name, "scale": int(scale), "weights": str(wfile),
                "sha256": sha256_file(wfile), "kind": "external", "_path": None}
    if any_scale and card.get("scale") is not None:
        scale = int(card["scale"])  # built as trained
    model = method.build_model(scale, config)
    try:
        load_weights(model, wfile, "cpu")
    except RuntimeError as exc:
        raise ValueError(f"{wfile}: weights do not fit {name} x{scale} ({str(exc).splitlines()[0]})") from exc
    model.to(device).eval()
    return model, card
