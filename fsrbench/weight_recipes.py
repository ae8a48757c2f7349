"""The weights package's recipe file (``recipes.yaml``) as data: its stages and entries, validated.

In the base layer (``yaml`` and :mod:`fsrbench.errors` only) because evaluation reads it too: when no weights
are found for a method, :func:`fsrbench.weights.pending_reference` names the pending entry that would train
them. The file format and the driver that runs the stages are described in :mod:`fsrbench.train.reference`,
which re-exports these names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from fsrbench.errors import RecipeError

PACKAGE_REF = "package:"  # init reference to a shipped entry's weights (next to the recipe file)


@dataclass
class Stage:
    name: str
    spec: dict[str, Any]

    @property
    def is_priors(self) -> bool:
        return "priors" in self.spec

    def init_refs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, ref in (self.spec.get("init") or {}).items():
            out[key] = list(ref) if isinstance(ref, (list, tuple)) else [ref]
        return out

    def needs(self) -> list[str]:
        deps = list(self.spec.get("needs") or [])
        for refs in self.init_refs().values():
            deps += [r.split("@")[0] for r in refs if not r.startswith(PACKAGE_REF)]
        return sorted(set(deps))


@dataclass
class Recipes:
    stages: dict[str, Stage]
    entries: dict[str, dict[str, Any]]
    path: Path | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Recipes":
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RecipeError(f"{p}: cannot read the recipe file ({exc})") from exc
        defaults = dict(raw.get("defaults") or {})
        stages = {}
        for name, spec in (raw.get("stages") or {}).items():
            if not isinstance(spec, Mapping):
                raise RecipeError(f"{p}: stage {name!r} must be a mapping")
            merged = dict(spec) if "priors" in spec else {**defaults, **spec}
            stages[name] = Stage(name, merged)
        entries = {k: dict(v) for k, v in (raw.get("entries") or {}).items()}
        rec = cls(stages, entries, p, defaults)
        rec.validate()
        return rec

    def validate(self) -> None:
        for st in self.stages.values():
            for dep in st.needs():
                if dep not in self.stages:
                    raise RecipeError(f"{self.path}: stage {st.name!r} needs unknown stage {dep!r}")
            if not st.is_priors:
                for key in ("method", "scale", "preset"):
                    if key not in st.spec:
                        raise RecipeError(f"{self.path}: stage {st.name!r} has no {key!r}")
        for name, e in self.entries.items():
            if e.get("stage") not in self.stages:
                raise RecipeError(f"{self.path}: entry {name!r} names unknown stage {e.get('stage')!r}")
            if "pending" in e and not (isinstance(e["pending"], str) and e["pending"].strip()):
                raise RecipeError(f"{self.path}: entry {name!r}: 'pending' must say why the entry is not shipped")
        self.order(list(self.stages))  # raises on a cycle

    def pending(self) -> dict[str, str]:
        """Entries not shipped yet, with the reason their ``pending:`` key gives (``fsrbench weights list``)."""
        return {k: str(e["pending"]).strip() for k, e in self.entries.items() if e.get("pending")}

    def pending_entry(self, method: str, scale: int) -> str | None:
        """The pending entry whose final stage trains ``method`` at ``scale``, if any."""
        for entry in self.pending():
            spec = self.stages[self.entries[entry]["stage"]].spec
            if spec.get("method") == method and int(spec.get("scale", -1)) == int(scale):
                return entry
        return None

    def order(self, wanted: Iterable[str]) -> list[str]:
        """``wanted`` and everything they need, dependencies first."""
        out: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: tuple[str, ...]) -> None:
            if n not in self.stages:
                raise RecipeError(f"unknown stage {n!r} (known: {', '.join(sorted(self.stages))})")
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise RecipeError(f"stage cycle: {' -> '.join(path + (n,))}")
            state[n] = 1
            for d in self.stages[n].needs():
                visit(d, path + (n,))
            state[n] = 2
            out.append(n)

        for w in wanted:
            visit(w, ())
        return out

    def chain(self, entry: str) -> list[dict[str, Any]]:
        """The stages of an entry in the order they ran, as stored on its card."""
        final = self.entries[entry]["stage"]
        return [{"stage": n, **self.stages[n].spec} for n in self.order([final])]
