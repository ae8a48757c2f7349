"""Every exception class of fsrbench, in one module that imports nothing else of the package.

User-facing code (``fsrbench.cli``) turns these into one-line messages with exit status 2; their
``str()`` is written for the user (it names the file, option or plugin and the fix).  The classes are
re-exported where plugin authors first met them (``fsrbench.Unavailable``, ``fsrbench.api.DataError``,
``fsrbench.registry.RegistryError``, ``fsrbench.recipes.ConfigError``,
``fsrbench.train.reference.RecipeError`` ...), so old imports keep working.
"""
from __future__ import annotations

import difflib
import pickle

__all__ = ["CellError", "ConfigError", "DataError", "DlibFormatError", "MethodCrashed", "MethodRaised", "MethodTimeout",
           "PluginLoadError", "ProtocolError", "RecipeError", "RegistryError", "TrainingDiverged", "Unavailable",
           "UnsafeFile", "unknown_name_message"]


class Unavailable(RuntimeError):
    """A component cannot run here (e.g. no trained weights). The message says how to fix it."""


class DataError(RuntimeError):
    """One input (image or annotation) cannot be used. The message names the file and the reason."""


class RegistryError(KeyError):
    """Unknown name or a component that cannot be loaded. ``str()`` is a user-facing message."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class PluginLoadError(RuntimeError):
    """A plugin (entry point or ``--plugin``) could not be imported or constructed."""


class ProtocolError(ValueError):
    """A protocol file is not valid (bad YAML, missing or unknown keys, file name and id disagree)."""


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file/key and the fix."""


class RecipeError(ValueError):
    """A reference-weights recipe file or a stage reference is wrong; the message names it."""


class UnsafeFile(ValueError, pickle.UnpicklingError):
    """A torch file that holds more than tensors and plain data (loading it could run code), or that cannot be
    read; it was not loaded.  The message names the file and the fix (never "load it unsafely")."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


class CellError(ValueError):
    """A stored cell that does not verify (unreadable, incomplete, or its files disagree with its checksums)."""


class MethodTimeout(Exception):
    """A method gave no result within the batch time limit."""


class MethodCrashed(Exception):
    """A method's worker process ended (``os._exit``, a crash, killed) while it ran a batch."""


class MethodRaised(Exception):
    """A method raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``
    in a worker, ...); recorded like any exception."""


class DlibFormatError(ValueError):
    """Bytes that are not the expected dlib serialization (``fsrbench.analysis.dlib_dnn``); names the byte offset."""


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown method 'x'. Did you mean 'y'? Registered methods: ...`` (used by every name lookup)."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(known) if known else "(none registered)"
    return f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}.{hint} Registered {kind}: {listing}"
