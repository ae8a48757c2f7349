"""Datasets: the built-in readers (demo, folder, CelebA, Helen, FFHQ, released DIC PNGs), multi-resolution
sets, split lists, crops and priors; :func:`open_dataset` turns a spec into a ready dataset for evaluation,
training, profiling and reports alike."""
from __future__ import annotations

from typing import Any

from fsrbench import registry as reg
from fsrbench.api.dataset import Dataset


def open_dataset(spec: str | Dataset, **options: Any) -> Dataset:
    """A dataset from ``name`` or ``name:arg`` (e.g. ``folder:/data/faces``), through the registry.

    ``arg`` (when not empty) is the first positional argument of the registered class or factory, ``options``
    its keyword arguments (``data_root``, ``split``, ...); a Dataset object is returned as it is."""
    if isinstance(spec, Dataset):
        return spec
    name, _, arg = str(spec).partition(":")
    factory = reg.datasets.get(name)
    if not callable(factory):  # a registered instance
        return factory
    return factory(arg, **options) if arg else factory(**options)
