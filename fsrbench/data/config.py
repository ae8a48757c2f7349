"""Where datasets live on disk: ``--data-root`` or a YAML config mapping dataset name -> path.

Resolution order for dataset ``name`` (first hit wins):

1. an explicit ``data_root`` (``--data-root DIR`` or ``Dataset(data_root=...)``), or the ``arg`` of
   ``celeba:/path`` when it is a directory;
2. the config file given as ``config=FILE`` / ``--config FILE``, else ``$FSRBENCH_CONFIG``, else
   ``~/.config/fsrbench/config.yaml`` when it exists. Accepted shapes (read with ``yaml.safe_load``)::

       datasets:                 # or the same mapping at top level
         celeba: /data/CelebA
         helen: {root: /data/helen, split_file: /data/helen/test50.txt}   # extra keys become options
         ffhq: /data/ffhq

   relative paths are relative to the config file's folder;
3. ``$FSRBENCH_DATA_ROOT/<name>`` when that folder exists.

Every failure raises :class:`FileNotFoundError` / :class:`ValueError` whose message names the file and
the fix (the CLI prints it without a traceback).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

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


def load_config(config: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Dataset entries of the config file: ``{name: {"root": Path, **options}}`` (empty if no file)."""
    path = config_path(config)
    if path is None:
        return {}
    try:
        with path.open() as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping `datasets: {{name: path}}`, got {type(doc).__name__}")
    section = doc.get("datasets", doc)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: `datasets:` must map dataset names to paths")
    out: dict[str, dict[str, Any]] = {}
    for name, value in section.items():
        if isinstance(value, (str, os.PathLike)):
            entry: dict[str, Any] = {"root": value}
        elif isinstance(value, dict) and "root" in value:
            entry = dict(value)
        else:
            raise ValueError(f"{path}: dataset {name!r} must be a path or a mapping with a `root:` key")
        root = Path(str(entry["root"])).expanduser()
        entry["root"] = root if root.is_absolute() else (path.parent / root)
        out[str(name)] = entry
    return out


def resolve_root(name: str, data_root: str | os.PathLike[str] | None = None, arg: str | None = None,
                 config: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """The root folder of dataset ``name`` and the extra options its config entry carries."""
    if data_root:
        p = Path(data_root).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{name}: data root {p} is not a directory (from --data-root); fix the path")
        return p, {}
    if arg:
        p = Path(arg).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{name}: {p} is not a directory (from `{name}:{arg}`); fix the path")
        return p, {}
    entries = load_config(config)
    if name in entries:
        entry = dict(entries[name])
        p = Path(entry.pop("root"))
        if not p.is_dir():
            src = config_path(config)
            raise FileNotFoundError(f"{name}: {p} (from {src}) is not a directory; fix `{name}:` in that file")
        return p, entry
    env = os.environ.get("FSRBENCH_DATA_ROOT")
    if env and (Path(env) / name).is_dir():
        return Path(env) / name, {}
    src = config_path(config)
    where = f"config {src} has no `{name}:` entry" if src else "no config file found"
    raise FileNotFoundError(
        f"{name}: where is the dataset? ({where}). Pass --data-root /path/to/{name}, or write "
        f"`datasets: {{{name}: /path/to/{name}}}` into {src or DEFAULT_CONFIG} (or a file given with --config)")
