"""Trained weights for evaluation: finding, verifying and loading them; partial loads for initialisation.

The training engine (:mod:`fsrbench.train.checkpoints`) writes, per checkpoint, a safetensors weights file and a
weight *card* (``*.card.json``: method, scale, step, kind ``step``/``best``, config, SHA-256 of the weights).
This module reads them:

* :func:`load_for_eval` is what :meth:`fsrbench.api.TrainableMethod.setup` calls: explicit ``--weights`` (a
  ``.safetensors`` file with or without its card, a card, or a directory), else the first of
  :func:`eval_weight_roots` holding a card for (method, scale) — best card first, else the latest — verified
  by SHA-256 and loaded into ``method.build_model(scale, card["config"])``;
* :func:`read_state_dict` / :func:`load_partial` read a state dict (safetensors, or ``torch.load`` with
  ``weights_only=True``) and load the entries that fit a module — the ``init_from`` keys of training configs.

Weights are only ever read from safetensors or ``weights_only`` torch files (a pickle could run code).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from fsrbench.errors import Unavailable, UnsafeFile
from fsrbench.recipes import resolve_config

CARD_FORMAT = "fsrbench-weights/1"
DEFAULT_CHECKPOINT_DIR = "checkpoints"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def _shown(path: str | os.PathLike[str]) -> str:
    """A searched folder as a message shows it: relative to the working directory when it lies inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve())) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)


def eval_weight_roots(options: Mapping[str, Any]) -> list[Path]:
    """Where evaluation looks for trained weights when no ``--weights`` is given, in order; the first directory
    holding a card for (method, scale) wins.  [CHOICE] weights.search_order: the user's own checkpoints first —
    ``--checkpoint-dir`` (``options["checkpoint_dir"]``), else ``$FSRBENCH_CHECKPOINTS``, else ``./checkpoints`` —
    then the installed weight packages (shipped reference weights), unless ``options["reference_weights"]``
    is False."""
    return [
        Path(options.get("checkpoint_dir") or os.environ.get("FSRBENCH_CHECKPOINTS") or DEFAULT_CHECKPOINT_DIR),
        *([] if options.get("reference_weights") is False else weight_package_dirs()),
    ]


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
    """The weights file a card names, beside it; ValueError when the name leaves the card's folder (absolute,
    ``..``) — a card must never make fsrbench read or hash files elsewhere."""
    rel = card.get("weights")
    parts = Path(rel).parts if isinstance(rel, str) else ()
    if not parts or Path(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise ValueError(f"{card.get('_path')}: its weights file {rel!r} is not a file in the card's folder; a card "
                         "names the weights file beside it (e.g. \"weights\": \"step_00001000.safetensors\"): fix "
                         "the card, or pass the weights file itself with --weights METHOD=FILE.safetensors")
    return Path(card["_path"]).parent / rel


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


def safe_torch_load(path: str | Path, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a file holding other Python objects (a pickle that could run code)
    or an unreadable one raises :class:`UnsafeFile` naming the file and ``fix`` — torch's own advice to load it
    with ``weights_only=False`` is never passed on."""
    import pickle
    import re

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it refers to {found.group(1)})" if found else ""
        raise UnsafeFile(f"{path}: refused to load: it holds Python objects other than tensors and plain data{what}, "
                         f"and loading those could run code; fsrbench never writes such files. {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsafeFile(f"{path}: unreadable ({first}). {fix}") from None


def load_weights(model: Any, path: str | Path, device: Any = "cpu", optional: tuple[str, ...] = ()) -> None:
    """Load safetensors weights (never a pickle: a pickled checkpoint could run code when loaded). Strict,
    except that the model's keys starting with one of ``optional`` (a method's ``training_only_state``, e.g.
    a GAN discriminator) may be absent from the file; a key of the file the model lacks is always an error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(model, str(path), strict=not optional, device=str(device))
    except SafetensorError as exc:
        raise Unavailable(f"{path} is not a safetensors file ({exc}); fsrbench loads weights only from "
                          f"safetensors — convert a trusted PyTorch state_dict with "
                          f"safetensors.torch.save_file(state_dict, 'weights.safetensors')") from exc
    needed = [k for k in missing if not k.startswith(tuple(optional))]
    if needed or unexpected:
        what = [f"missing {len(needed)} tensor(s), e.g. {needed[:3]}"] if needed else []
        what += [f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[:3]}"] if unexpected else []
        raise RuntimeError(f"Error(s) in loading state_dict: {'; '.join(what)}")


def training_only(method: Any) -> tuple[str, ...]:
    """A method's (class or instance) ``training_only_state`` prefixes: weights a file may leave out."""
    return tuple(getattr(method, "training_only_state", ()))


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


def train_command(method: str, scale: int) -> str:
    return f"fsrbench train {method} --scale {scale} --dataset ..."


def pending_reference(method: str, scale: int, roots: list[Path]) -> str | None:
    """A hint when an installed weight package lists (method, scale) as ``pending:`` in its ``recipes.yaml``:
    which entry, and the command that trains it; None when no package does."""
    from fsrbench.errors import RecipeError
    from fsrbench.weight_recipes import Recipes

    for root in roots:
        path = Path(root) / "recipes.yaml"
        try:
            entry = Recipes.load(path).pending_entry(method, scale) if path.is_file() else None
        except RecipeError:  # a broken recipe file must not hide the "no trained weights" message
            continue
        if entry:
            return (f"the reference entry {entry} is not shipped yet (`fsrbench weights list` says why); "
                    f"`fsrbench weights reproduce {entry}` trains it")
    return None


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
        roots = eval_weight_roots(opts)
        for root in roots:
            card = lookup(root)
            if card is not None:
                break
        if card is None:
            pending = pending_reference(name, scale or 8, roots[1:])
            raise Unavailable(f"no trained weights for {name} x{scale} (searched {', '.join(map(_shown, roots))}); "
                              + (pending or f"train with: {train_command(name, scale or 8)}"))
    if card is not None:
        if card.get("method") != name or (int(card.get("scale", -1)) != int(scale) and not any_scale):
            raise ValueError(f"{card['_path']}: weights are for {card.get('method')} x{card.get('scale')}, "
                             f"not {name} x{scale}")
        wfile = verify(card)
        config = card.get("config") or {}
    else:
        config = resolve_config(method, "default")
        card = {"format": None, "method": name, "scale": int(scale), "weights": str(wfile),
                "sha256": sha256_file(wfile), "kind": "external", "_path": None}
    if any_scale and card.get("scale") is not None:
        scale = int(card["scale"])  # built as trained
    model = method.build_model(scale, config)
    try:
        load_weights(model, wfile, "cpu", training_only(method))
    except RuntimeError as exc:
        raise ValueError(f"{wfile}: weights do not fit {name} x{scale} ({str(exc).splitlines()[0]})") from exc
    model.to(device).eval()
    return model, card


#: split names that hold test images in the built-in readers (cards written before the ``test_split`` flag)
_TEST_SPLIT_NAMES = ("test", "test-full", "test-all", "all")


def weights_provenance(card: Mapping[str, Any] | None, paper_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How a cell's weights bear on comparisons, from its weight card: ``{"comparable": bool, "why": str,
    "test_split": bool, "split": str | None}``.

    Not comparable with the papers' numbers: weights trained on a split that holds test images; fsrbench's shipped
    reference weights (``kind: reference``); weights trained on fewer images than the method's paper recipe
    (``paper_config``, the method's ``default`` preset: steps x batch), e.g. a ``smoke`` run.  No card (a method
    without weights), SR images made elsewhere and a bare weights file are taken as they come."""
    out: dict[str, Any] = {"comparable": True, "why": "", "test_split": False, "split": None}
    if not isinstance(card, Mapping):
        return out
    ds = card.get("dataset") if isinstance(card.get("dataset"), Mapping) else {}
    out["split"] = ds.get("split")
    flag = ds.get("test_split")
    test = bool(flag) if flag is not None else (ds.get("split") in _TEST_SPLIT_NAMES)
    why = []
    if test:
        out["test_split"] = True
        why.append(f"trained on {ds.get('name') or '?'}, a split that holds test images")
    kind = card.get("kind")
    if kind == "reference":
        why.append("fsrbench CPU reference weights (a small budget on faces-train), not the paper's")
    elif kind in ("step", "best") and paper_config:
        cfg = card.get("config") if isinstance(card.get("config"), Mapping) else {}
        try:
            seen = int(card.get("step") or 0) * int(cfg.get("batch_size") or 0)
            paper_steps = paper_config.get("steps")
            paper = int(paper_steps) * int(paper_config.get("batch_size") or 0) if paper_steps else None
        except (TypeError, ValueError):
            seen, paper = 0, None
        if paper and seen < paper:
            why.append(f"trained {card.get('step')} steps x batch {cfg.get('batch_size')}, less than the paper "
                       f"recipe's {paper_steps} x {paper_config.get('batch_size')} (a smoke or reduced run)")
    if why:
        out["comparable"], out["why"] = False, "; ".join(why)
    return out


# ------------------------------------------------------------------------------------------------
# partial loads (init_from)
# ------------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path, nested: tuple[str, ...] = ("model", "state_dict"),
                    missing: str = "") -> dict[str, Any]:
    """A state dict from a .safetensors file (the engine's weights) or a torch file read with
    ``weights_only=True``, unwrapped from the wrapper keys ``nested`` (tried in order, e.g. ``"model"``,
    ``"state_dict"``); a leading ``"module."`` (DDP) is stripped.  ``missing`` is the fix named when the file
    does not exist."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(missing.format(path=p) if missing else
                                f"initial weights {p} do not exist (set the config key to a trained "
                                "checkpoint's .safetensors file, e.g. from `fsrbench train`)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        state = safe_torch_load(p, "Use a .safetensors file or a trusted state dict saved with tensors only.")
        for key in nested:
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{p}: not a state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def load_partial(module: Any, path: str | Path, prefix: str = "", strip: str = "") -> dict[str, list[str]]:
    """Load the entries of ``path`` whose names (after removing ``strip``) start with ``prefix`` into
    ``module`` (names taken relative to ``prefix``).  Shapes must agree; nothing matching is an error.
    Returns {"loaded": [...], "missing": [...]} (missing = module keys not in the file)."""
    state = read_state_dict(path)
    if strip:
        state = {(k[len(strip):] if k.startswith(strip) else k): v for k, v in state.items()}
    own = module.state_dict()
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in own}
    if not picked:
        raise ValueError(f"{path}: no weights for this model (prefix {prefix!r}); is it the right checkpoint?")
    bad = [k for k, v in picked.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:5]} (config differs from the checkpoint's)")
    module.load_state_dict(picked, strict=False)
    return {"loaded": sorted(picked), "missing": sorted(set(own) - set(picked))}
