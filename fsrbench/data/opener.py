"""Dataset spec -> ready :class:`~fsrbench.api.Dataset` (the one opener of ``run``, ``train``, ``data check``,
the reports and the Python API); the grammar is :mod:`fsrbench.data.spec`."""
from __future__ import annotations

from typing import Any

from fsrbench import registry as reg
from fsrbench.api import Dataset
from fsrbench.data.base import FaceDataset
from fsrbench.data.spec import DatasetSpec, parse_spec


def is_reader(cls: Any) -> bool:
    """True for the on-disk readers that take a root and a split (FaceDataset subclasses)."""
    return isinstance(cls, type) and issubclass(cls, FaceDataset)


def dataset_class(name: str) -> Any:
    return reg.datasets.get(name)


def open_dataset(spec: str | DatasetSpec | Dataset, *, split: str | None = None, data_root: str | None = None,
                 config: str | None = None, default_split: str | None = None, **options: Any) -> Dataset:
    """A ready dataset from ``spec`` (``NAME[:ROOT][@SPLIT]``, a :class:`DatasetSpec` or a Dataset, returned as is).

    ``split`` / ``data_root`` are the command's ``--split`` / ``--data-root`` (the spec's own root and split win);
    ``default_split`` is used when neither the spec, ``split`` nor the config file names one (None: the reader's
    own default, ``test``); ``config`` is the dataset config file (``--config``); ``options`` are dataset options
    (``split_file=``, ``crop=`` ...)."""
    if isinstance(spec, Dataset):
        return spec
    ds = spec if isinstance(spec, DatasetSpec) else parse_spec(spec)
    cls = dataset_class(ds.name)
    opts = dict(options)
    opts.update(ds.options)
    if is_reader(cls):
        kw: dict[str, Any] = dict(opts)
        if data_root and not ds.arg:
            kw["data_root"] = data_root
        if config:
            kw["config"] = config
        kw["split"] = ds.split or split
        if default_split and not kw["split"]:
            kw["default_split"] = default_split
        return cls(ds.arg, **kw)
    if ds.split:
        raise ValueError(f"dataset {ds.name!r} has no splits; drop `@{ds.split}` from {str(ds)!r}")
    if not callable(cls):  # a registered instance
        return cls
    return cls(ds.arg, **opts) if ds.arg else cls(**opts)  # arg positional when not empty, options by keyword


__all__ = ["dataset_class", "is_reader", "open_dataset"]
