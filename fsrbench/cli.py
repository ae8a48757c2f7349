"""Command-line interface: ``fsrbench <command> ...``.

Each command is a module in :mod:`fsrbench.commands` exposing ``add_parser(subparsers)``; the parser it
adds sets ``func`` (``args -> int`` exit status). New commands are added by dropping a module there.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys

# OpenMP worker threads that spin while they wait collapse when the cores are shared with other work
# (measured: LPIPS 6x slower with 2 spinning threads on a busy 2-core machine, docs/performance.md).
# The CLI sets passive waiting before torch loads its OpenMP runtime; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import fsrbench.commands as _commands
from fsrbench import __version__
from fsrbench.errors import PluginLoadError, RegistryError, Unavailable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fsrbench", description="Benchmark for emotion-aware face super-resolution.")
    parser.add_argument("--version", action="version", version=f"fsrbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def os_error_message(exc: OSError, command: str | None) -> str:
    """What went wrong writing or reading which file, and what to do (results are written atomically, so what
    was complete stays and the same command continues)."""
    where = exc.filename or "a file"
    again = ("continue with the same command plus --resume (the last complete checkpoint is kept)"
             if command == "train" else "run the same command again: complete results are kept and it resumes")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device while writing {where}; free some space (or choose another --out), then {again}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where} ({exc.strerror}); choose a writable --out or fix the permissions, then {again}"
    return f"{where}: {exc.strerror or exc}; fix that, then {again}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (RegistryError, PluginLoadError, Unavailable, FileNotFoundError, ValueError) as exc:
        print(f"fsrbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only or vanished folder: the file and the fix, no traceback
        print(f"fsrbench {args.command}: error: {os_error_message(exc, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
