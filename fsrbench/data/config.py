"""Where datasets live on disk: the spec's own root, ``--data-root``, a YAML config file, ``$FSRBENCH_DATA_ROOT``.

Resolution order for dataset ``name`` (first hit wins):

1. the root of the spec ``celeba:/path`` (``arg``), or an explicit ``data_root`` (``--data-root DIR`` or
   ``Dataset(data_root=...)``): ``DIR/<name>`` when such a folder exists (any letter case, so one
   ``--data-root /data`` serves ``--datasets celeba,helen`` with ``/data/CelebA`` and ``/data/Helen``), else
   ``DIR`` itself;
2. the config file given as ``config=FILE`` / ``--config FILE``, else ``$FSRBENCH_CONFIG``, else
   ``~/.config/fsrbench/config.yaml`` when it exists. Accepted shapes (read with ``yaml.safe_load``)::

       datasets:                 # or the same mapping at top level
         celeba: /data/CelebA
         helen: {root: /data/helen, split: test-all}      # split: this entry's split; other keys are options
         helen@test: {root: /data/helen, split_file: /data/helen/test50.txt}
         ffhq: {split: test}                               # no root: found as in 3.

   or a list of specs and mappings (``- celeba:/data/CelebA@test``, ``- {name: helen, root: ..., split: ...}``).
   Keys are dataset specs (``NAME[@SPLIT]``, :mod:`fsrbench.data.spec`); relative roots are relative to the
   config file's folder.  An entry's ``split_file`` is the list of that entry's split (default ``test``) and
   is used only when that split is opened — a training command opening ``train`` does not inherit it;
3. ``$FSRBENCH_DATA_ROOT/<name>`` when that folder exists (any letter case: ``CelebA``, ``celeba``).

Every failure raises :class:`FileNotFoundError` / :class:`ValueError` whose message names the file, every
path tried and the fix (the CLI prints it without a traceback).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from fsrbench.data.spec import parse_spec

DEFAULT_CONFIG = Path.home() / ".config" / "fsrbench" / "config.yaml"


def config_path(config: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use (explicit, ``$FSRBENCH_CONFIG``, or the default when it exists)."""
    if config:
        p = Path(config).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist (from --config); create it or fix the path")
        return p
    env = os.environ.get("FSRBENCH_CONFIG")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist (from $FSRBENCH_CONFIG); unset it or fix the path")
        return p
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def read_document(path: Path) -> dict[str, Any]:
    """The YAML mapping of a config file (``{}`` for an empty file)."""
    try:
        with path.open() as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping `datasets: {{name: path}}`, got {type(doc).__name__}")
    return doc


def dataset_entries(doc: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The dataset entries of a config document, each ``{"name", "root" (Path or None), "split" (or None),
    **options}``, in file order."""
    section = doc.get("datasets", doc if "datasets" not in doc and not _looks_like_experiment(doc) else None)
    if section is None:
        return []
    if isinstance(section, dict):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in section.items()]
    elif isinstance(section, list):
        items = []
        for v in section:
            if isinstance(v, str):
                items.append((v, None))
            elif isinstance(v, dict) and "name" in v:
                items.append((str(v["name"]), {k: x for k, x in v.items() if k != "name"}))
            else:
                raise ValueError(f"{path}: every item of `datasets:` must be a spec string (celeba:/data/CelebA@test) "
                                 f"or a mapping with a `name:` key, got {v!r}")
    else:
        raise ValueError(f"{path}: `datasets:` must map dataset names to paths (or list dataset specs)")
    out = []
    for key, value in items:
        try:
            spec = parse_spec(key)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if value is None:
            entry: dict[str, Any] = {}
        elif isinstance(value, (str, os.PathLike)):
            entry = {"root": value}
        elif isinstance(value, dict):
            entry = dict(value)
        else:
            raise ValueError(f"{path}: dataset {key!r} must be a path or a mapping (root:, split:, options)")
        if spec.arg and "root" not in entry:
            entry["root"] = spec.arg
        if spec.split and entry.get("split") not in (None, spec.split):
            raise ValueError(f"{path}: dataset {key!r} names split {spec.split!r} and `split: {entry['split']}`; "
                             "keep one")
        entry["split"] = spec.split or entry.get("split")
        if entry.get("root") is not None:
            root = Path(str(entry["root"])).expanduser()
            entry["root"] = root if root.is_absolute() else (path.parent / root)
        else:
            entry["root"] = None
        entry["name"] = spec.name
        out.append(entry)
    return out


def _looks_like_experiment(doc: dict[str, Any]) -> bool:
    return any(k in doc for k in ("methods", "scales", "protocol", "metrics"))


def load_config(config: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Dataset entries of the config file by name: ``{name: {"root": Path or None, **options}}`` (empty if no
    file).  With several entries of one name (``celeba`` and ``celeba@test-full``) the first is returned."""
    path = config_path(config)
    if path is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for e in dataset_entries(read_document(path), path):
        entry = {k: v for k, v in e.items() if k != "name"}
        if entry.get("split") is None:
            entry.pop("split")
        out.setdefault(e["name"], entry)
    return out


def config_entry(name: str, split: str | None, config: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The config entry of dataset ``name`` for ``split``: an entry naming that split, else one naming no split,
    else (for its root and options) the first entry of that name; None when the file has none."""
    path = config_path(config)
    if path is None:
        return None
    entries = [e for e in dataset_entries(read_document(path), path) if e["name"] == name]
    exact = [e for e in entries if split and e.get("split") == split]
    plain = [e for e in entries if e.get("split") is None]
    pick = exact or plain or entries
    return dict(pick[0]) if pick else None


def child_folder(parent: Path, name: str) -> Path | None:
    """``parent/<name>`` in any letter case (exact case first), or None."""
    exact = parent / name
    if exact.is_dir():
        return exact
    try:
        hits = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.lower() == name.lower())
    except OSError:
        return None
    return hits[0] if hits else None


def resolve_root(name: str, data_root: str | os.PathLike[str] | None = None, arg: str | None = None,
                 config: str | os.PathLike[str] | None = None,
                 split: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The root folder of dataset ``name`` and the config entry's other keys (``split`` and options) for
    ``split`` (None: the entry without a split)."""
    entry = None
    tried: list[str] = []
    if arg:
        p = Path(arg).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{name}: {p} is not a directory (from `{name}:{arg}`); fix the path")
        root: Path | None = p
    elif data_root:
        d = Path(data_root).expanduser()
        if not d.is_dir():
            raise FileNotFoundError(f"{name}: data root {d} is not a directory (from --data-root); fix the path")
        root = child_folder(d, name) or d
    else:
        root = None
    src = config_path(config)
    if src is not None:
        entry = config_entry(name, split, config)
    extra = {k: v for k, v in (entry or {}).items() if k not in ("root", "name")}
    if extra.get("split") is None:
        extra.pop("split", None)
    if root is not None:
        return root, extra
    if entry is not None and entry.get("root") is not None:
        p = Path(entry["root"])
        if not p.is_dir():
            raise FileNotFoundError(f"{name}: {p} (from {src}) is not a directory; fix `{name}:` in that file")
        return p, extra
    tried.append("--data-root: not given")
    if src is None:
        tried.append(f"config file: none (no --config, $FSRBENCH_CONFIG unset, {DEFAULT_CONFIG} absent)")
    else:
        tried.append(f"config file {src}: " + ("its entry has no `root:`" if entry is not None else f"no `{name}:` entry"))
    env = os.environ.get("FSRBENCH_DATA_ROOT")
    if env:
        hit = child_folder(Path(env).expanduser(), name)
        if hit is not None:
            return hit, extra
        tried.append(f"$FSRBENCH_DATA_ROOT/{name} = {Path(env).expanduser() / name} (any letter case): not found")
    else:
        tried.append(f"$FSRBENCH_DATA_ROOT/{name}: $FSRBENCH_DATA_ROOT is not set")
    raise FileNotFoundError(
        f"{name}: where is the dataset? Tried: " + "; ".join(tried) + f". Fix: pass --datasets {name}:/path/to/{name} "
        f"(or --data-root /path/to/{name}), set FSRBENCH_DATA_ROOT to the folder that holds {name}/, or write "
        f"`datasets: {{{name}: /path/to/{name}}}` into {src or DEFAULT_CONFIG} (or a file given with --config). "
        f"`fsrbench data check {name}` explains what to download")
