"""Typed registries for everything fsrbench can plug in.

Every kind of component (methods, metrics, datasets and the face-analysis models) lives in one
:class:`Registry`, fed by a Python entry-point group.  The built-in components register through the very
same entry points a third-party package uses (see ``pyproject.toml``), so there is exactly one discovery
mechanism.  Values are lazy: an entry point (or a ``"module:attr"`` string) is only imported when the
component is first asked for, and a component that fails to import is reported, never fatal for the
others.

One-off plugins are loaded with :func:`load_plugin` from ``path/to/file.py:Name`` or ``module:Name``
(the CLI's ``--plugin``).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from fsrbench.errors import PluginLoadError, RegistryError, unknown_name_message

T = TypeVar("T")

#: what a registered name may look like: it becomes a folder name in every results directory, so no path
#: separator, no dot name ("." / ".." would address the parent folders), nothing hidden (leading dot)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")


def check_name(kind: str, name: Any, where: str = "") -> str:
    """``name`` if it is a safe registered name (:data:`NAME_RE`), else :class:`RegistryError` saying why."""
    if isinstance(name, str) and NAME_RE.match(name) and name not in (".", ".."):
        return name
    what = kind[:-1] if kind.endswith("s") else kind
    raise RegistryError(f"{what} name {name!r}{f' ({where})' if where else ''} is not allowed: a registered name "
                        "starts with a letter, digit or '_' and holds only letters, digits and '_ . + -' (at most "
                        "64 characters; it becomes a folder name of the results); rename it (the class attribute "
                        "`name`)")

GROUPS = {
    "methods": "fsrbench.methods",
    "metrics": "fsrbench.metrics",
    "datasets": "fsrbench.datasets",
    "fer": "fsrbench.fer",
    "au": "fsrbench.au",
    "landmarks": "fsrbench.landmarks",
    "identity": "fsrbench.identity",
}


@dataclass
class _Entry:
    name: str
    target: Any  # an object, or a "module:attr" string, or an importlib.metadata.EntryPoint
    source: str  # "entry point <dist>", "plugin <spec>", "register()"
    obj: Any = None
    error: str | None = None

    def load(self) -> Any:
        if self.obj is not None:
            return self.obj
        if self.error is not None:
            raise PluginLoadError(self.error)
        try:
            if isinstance(self.target, str):
                self.obj = import_target(self.target)
            elif hasattr(self.target, "load") and hasattr(self.target, "group"):
                self.obj = self.target.load()
            else:
                self.obj = self.target
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not kill the harness
            self.error = f"{self.name!r} ({self.source}) failed to import: {type(exc).__name__}: {exc}"
            raise PluginLoadError(self.error) from exc
        return self.obj


@dataclass
class Registry(Generic[T]):
    """A name -> component registry for one kind of thing (``kind`` is e.g. ``"methods"``)."""

    kind: str
    group: str
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _discovered: bool = False

    # -- population -------------------------------------------------------------------------------
    def discover(self) -> None:
        """Read the entry-point group once (idempotent)."""
        if self._discovered:
            return
        self._discovered = True
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            if ep.name in self._entries:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            entry = _Entry(ep.name, ep, f"entry point of {dist}")
            try:
                check_name(self.kind, ep.name, f"entry point of {dist}")
            except RegistryError as exc:  # kept visible as a broken entry: using it reports why
                entry.error = str(exc)
            self._entries[ep.name] = entry

    def register(self, name: str, target: Any, source: str = "register()", *, override: bool = False) -> None:
        """Register ``target`` (object or ``"module:attr"``) under ``name`` (a safe name: :func:`check_name`)."""
        check_name(self.kind, name, source)
        self.discover()
        if name in self._entries and not override:
            raise RegistryError(f"{self.kind} {name!r} is already registered ({self._entries[name].source})")
        self._entries[name] = _Entry(name, target, source)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    # -- lookup -----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def source(self, name: str) -> str:
        return self._entry(name).source

    def _entry(self, name: str) -> _Entry:
        self.discover()
        if name not in self._entries:
            raise RegistryError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def get(self, name: str) -> T:
        """The registered object (class or factory) for ``name``; raises with 'did you mean'."""
        return self._entry(name).load()

    def load_all(self) -> tuple[dict[str, T], dict[str, str]]:
        """Load every entry; returns (loaded, {name: error}) so broken plugins are reported, not fatal."""
        ok: dict[str, T] = {}
        bad: dict[str, str] = {}
        for name in self.names():
            try:
                ok[name] = self.get(name)
            except PluginLoadError as exc:
                bad[name] = str(exc)
        return ok, bad


def import_target(spec: str) -> Any:
    """Import ``"package.module:attr"`` or ``"path/to/file.py:attr"``."""
    if ":" not in spec:
        raise PluginLoadError(f"plugin spec {spec!r} must look like 'module:Name' or 'path/to/file.py:Name'")
    mod_part, _, attr = spec.rpartition(":")
    if mod_part.endswith(".py") or "/" in mod_part or "\\" in mod_part:
        path = Path(mod_part).expanduser().resolve()
        if not path.is_file():
            raise PluginLoadError(f"plugin file {path} does not exist (from --plugin {spec!r})")
        mod_name = f"fsrbench_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
        module = sys.modules.get(mod_name)
        if module is None:
            mspec = importlib.util.spec_from_file_location(mod_name, path)
            if mspec is None or mspec.loader is None:
                raise PluginLoadError(f"cannot import plugin file {path}")
            module = importlib.util.module_from_spec(mspec)
            sys.modules[mod_name] = module
            try:
                mspec.loader.exec_module(module)
            except Exception:
                sys.modules.pop(mod_name, None)
                raise
    else:
        module = importlib.import_module(mod_part)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginLoadError(f"{mod_part!r} has no attribute {part!r} (from plugin spec {spec!r})")
        obj = getattr(obj, part)
    return obj


REGISTRIES: dict[str, Registry[Any]] = {kind: Registry(kind, group) for kind, group in GROUPS.items()}


def registry(kind: str) -> Registry[Any]:
    if kind not in REGISTRIES:
        raise RegistryError(unknown_name_message("registry kinds", kind, sorted(REGISTRIES)))
    return REGISTRIES[kind]


methods = REGISTRIES["methods"]
metrics = REGISTRIES["metrics"]
datasets = REGISTRIES["datasets"]


def _kind_of(obj: Any) -> str:
    """The registry a plugin class belongs to: the ``kind`` its base class declares (Method, Metric, Dataset,
    FERModel, AUEstimator); ``methods`` for anything else (factories, instances, classes without a kind)."""
    kind = getattr(obj, "kind", None) if isinstance(obj, type) else None
    return kind if isinstance(kind, str) and kind in REGISTRIES else "methods"


def load_plugin(spec: str, kind: str | None = None, override: bool = False) -> str:
    """Load a one-off plugin (``path.py:Name`` or ``module:Name``) and register it.

    The registry is ``kind`` or, when None, inferred from the object's base class (Method, Metric,
    Dataset, FERModel, AUEstimator). Its ``name`` attribute (or the attribute name) becomes its registered
    name, which is returned; it must be a safe name (:func:`check_name`).  A name that is already taken (a
    built-in, or another plugin) is refused unless ``override`` (the CLI's ``--plugin-override``): a plugin
    must not silently stand in for a built-in.  Loading the same plugin again is fine.  Import errors,
    unsafe and taken names raise :class:`PluginLoadError` naming the spec.
    """
    try:
        obj = import_target(spec)
    except PluginLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PluginLoadError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
    name = getattr(obj, "name", None) or spec.rpartition(":")[2]
    r = registry(kind or _kind_of(obj))
    try:
        check_name(r.kind, name, f"--plugin {spec}")
    except RegistryError as exc:
        raise PluginLoadError(str(exc)) from None
    r.discover()
    old = r._entries.get(name)
    if old is not None and not override and old.error is None and old.obj is not obj:
        what = r.kind[:-1] if r.kind.endswith("s") else r.kind
        raise PluginLoadError(f"--plugin {spec}: the {what} name {name!r} is already taken ({old.source}); give the "
                              f"plugin another `name`, or pass --plugin-override to replace {name!r} with it")
    r.register(str(name), obj, f"plugin {spec}", override=True)
    return str(name)


def register_broken(kind: str, name: str, source: str, error: str) -> None:
    """Keep a plugin that failed to load visible under ``name``: using it raises ``error``.  An unsafe
    ``name`` is not registered (the error is reported by the caller)."""
    r = registry(kind)
    try:
        check_name(kind, name)
    except RegistryError:
        return
    r.discover()
    r._entries[name] = _Entry(name, None, source, error=error)


_DISTS: dict[str, list[str]] = {}  # top-level module -> distributions (read once)
_SOURCE_SHA256: dict[str, str | None] = {}  # module file -> SHA-256 (a module is imported once per process)


def _package_distributions() -> dict[str, list[str]]:
    if not _DISTS:
        from importlib.metadata import packages_distributions

        _DISTS.update(packages_distributions())
    return _DISTS


def _file_sha256(path: str) -> str | None:
    if path not in _SOURCE_SHA256:
        try:
            _SOURCE_SHA256[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            _SOURCE_SHA256[path] = None
    return _SOURCE_SHA256[path]


def implementation_id(obj: Any) -> dict[str, str]:
    """What identifies the code behind a registered component (part of every cell key, so that results of
    one implementation are never reused for another that has the same name): ``target`` = module:qualname
    and either ``version`` (``dist==X`` when the module belongs to an installed distribution) or
    ``source_sha256`` (the module file's SHA-256: ``--plugin`` files and modules outside any distribution)."""
    cls = obj if isinstance(obj, type) or inspect.isfunction(obj) else type(obj)
    module = str(getattr(cls, "__module__", "") or "?")
    ident = {"target": f"{module}:{getattr(cls, '__qualname__', getattr(cls, '__name__', '?'))}"}
    dists = _package_distributions().get(module.split(".")[0]) if not module.startswith("fsrbench_plugin_") else None
    if dists:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ident["version"] = f"{dists[0]}=={version(dists[0])}"
            return ident
        except PackageNotFoundError:
            pass
    try:
        src = inspect.getsourcefile(cls)
    except TypeError:
        src = None
    digest = _file_sha256(str(Path(src).resolve())) if src else None
    ident["source_sha256"] = digest or "unknown"
    return ident


def instantiate(factory: Callable[..., T] | T, **kwargs: Any) -> T:
    """Construct a registered component: classes/functions are called, instances returned as they are."""
    if isinstance(factory, type) or inspect.isfunction(factory):
        return factory(**kwargs)  # type: ignore[misc,return-value]
    return factory  # type: ignore[return-value]
