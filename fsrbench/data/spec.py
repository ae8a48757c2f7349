"""Dataset specs: the one grammar of ``run --datasets``, ``train --dataset``, ``data check`` and the config files.

::

    NAME[:ROOT][@SPLIT]

    celeba                        root from --data-root / the config file / $FSRBENCH_DATA_ROOT; the command's split
    celeba@test-full              that split
    celeba:/data/CelebA           that folder
    helen:/data/Helen@test-all    both
    folder:/data/faces            folder, released, demo ...: the argument is what the dataset takes; no split

``run --datasets`` takes a comma list of specs (``celeba:/data/CelebA@test,helen:/data/Helen@test-all``).  The
``@SPLIT`` suffix is recognised when it follows the last ``/`` of the spec and is a plain word (letters, digits,
``-``, ``_``, ``.``), so ``folder:/data/me@home/faces`` is a folder, not a split.  A root that contains ``,`` or
ends in ``@word`` goes into a config file instead (docs/datasets.md).

:func:`fsrbench.data.opener.open_dataset` turns a spec into a ready :class:`~fsrbench.api.Dataset`: a reader of on-disk datasets
(:class:`~fsrbench.data.base.FaceDataset`: CelebA, Helen, FFHQ, released PNGs) gets its root and split with this
precedence — the spec's own ``ROOT``/``@SPLIT`` > the command's ``--data-root``/``--split`` > the config file's
entry > ``$FSRBENCH_DATA_ROOT`` / the command's default split (``test`` for evaluation, ``train`` for training).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_SPLIT_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class DatasetSpec:
    """A parsed ``NAME[:ROOT][@SPLIT]``; ``options`` are extra dataset options (from a config entry)."""

    name: str
    arg: str | None = None
    split: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name + (f":{self.arg}" if self.arg else "") + (f"@{self.split}" if self.split else "")


def parse_spec(text: str) -> DatasetSpec:
    """``NAME[:ROOT][@SPLIT]`` -> :class:`DatasetSpec` (see the module docstring)."""
    s = str(text).strip()
    if not s:
        raise ValueError("empty dataset spec; write NAME[:ROOT][@SPLIT], e.g. celeba:/data/CelebA@test")
    split = None
    head, at, tail = s.rpartition("@")
    if at and head and _SPLIT_RE.match(tail) and "/" not in tail and "\\" not in tail:
        s, split = head, tail
    name, colon, arg = s.partition(":")
    name = name.strip()
    if not name or (colon and not arg.strip()):
        raise ValueError(f"dataset spec {text!r}: write NAME[:ROOT][@SPLIT], e.g. celeba:/data/CelebA@test")
    return DatasetSpec(name, arg.strip() or None, split)


def parse_specs(text: str | list[str] | tuple[str, ...]) -> list[DatasetSpec]:
    """A comma list (or a list) of specs."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [parse_spec(x) if not isinstance(x, DatasetSpec) else x for x in items if str(x).strip()]
    if not out:
        raise ValueError(f"no dataset in {text!r}; write e.g. --datasets celeba,helen@test-all")
    return out


__all__ = ["DatasetSpec", "parse_spec", "parse_specs"]
