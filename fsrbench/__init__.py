"""fsrbench — benchmark and metrics suite for emotion-aware face super-resolution.

Python API (mirrors the CLI)::

    import fsrbench
    df = fsrbench.evaluate(methods=["bicubic"], datasets=["demo"], scales=[4, 8])   # per-image DataFrame
    psnr = fsrbench.get_metric("psnr")            # callable on (sr, hr) tensors in [0,1], [B,3,H,W]
    values = psnr(sr, hr, scale=4)                # numpy array of per-image PSNR (dB)
    method = fsrbench.get_method("bicubic", scale=4)
    ds = fsrbench.get_dataset("folder:/path/to/faces")
    df = fsrbench.score(sr="my_sr/", hr="my_hr/", scale=8, name="mymethod")   # SR images made elsewhere
"""
from __future__ import annotations

from typing import Any

from fsrbench import registry
from fsrbench.protocols import DEFAULT_PROTOCOL
from fsrbench._version import __version__
from fsrbench.api import (Batch, CellContext, DataError, Dataset, Method, Metric, Sample, TrainableMethod,
                          TrainBatch, Unavailable)

# The evaluation modules (pandas, the face models' modules ...) are imported by the functions below when
# they are called, so that ``import fsrbench`` stays light for plugin authors and the CLI.

__all__ = ["Batch", "CellContext", "DataError", "Dataset", "Method", "Metric", "Sample", "TrainableMethod",
           "TrainBatch", "Unavailable", "evaluate", "get_dataset", "get_method", "get_metric", "score", "__version__"]


def get_metric(name: str, protocol: str | None = None, device: str = "cpu", **options: Any) -> Metric:
    """A ready metric from the registry (models loaded); call it as ``metric(sr, hr, scale=...)``."""
    m = registry.metrics.get(name)(protocol=protocol, **options)
    m.setup(device)
    return m


def get_method(name: str, scale: int | None = None, device: str = "cpu", weights: str | None = None,
               **options: Any) -> Method:
    """A method from the registry; set up for ``scale`` (weights loaded) when a scale is given."""
    m = registry.methods.get(name)(**options)
    if scale is not None:
        m.setup(scale=scale, device=device, weights=weights)
    return m


def get_dataset(spec: str, **options: Any) -> Dataset:
    """``demo``, ``folder:/dir``, ``celeba`` ... as a Dataset (``ids()``, ``load(id)``)."""
    from fsrbench.data import open_dataset

    return open_dataset(spec, **options)


def evaluate(methods: list[str] | str = "all", datasets: list[str] | str = "demo", scales: list[int] | int = (4, 8),
             metrics: list[str] | None = None, protocol: str = DEFAULT_PROTOCOL, out: str | None = None,
             progress: bool = False, **kwargs: Any) -> Any:
    """Run an evaluation (the runner of ``fsrbench run``) and return the per-image pandas DataFrame.

    ``out`` is the results directory (default: a temporary directory); other keyword arguments are
    fields of :class:`fsrbench.eval.runner.RunSpec` (``batch_size``, ``device``, ``weights``, ...).
    The dataset-level summaries are in ``df.attrs["metrics"]``.
    """
    import tempfile

    from fsrbench.eval.runner import RunSpec, run

    as_list = (lambda v: [v] if isinstance(v, (str, int)) else list(v))
    spec = RunSpec(methods=as_list(methods), datasets=as_list(datasets), scales=[int(s) for s in as_list(scales)],
                   metrics=metrics, protocol=protocol, out=out or tempfile.mkdtemp(prefix="fsrbench-"),
                   progress=progress, **kwargs)
    result = run(spec, log=(lambda msg: None) if not progress else None)
    df = result.per_image
    sel = df[df["method"].isin(set(_resolved(spec.methods))) & df["scale"].isin(spec.scales)].reset_index(drop=True)
    sel.attrs["metrics"] = result.metrics
    sel.attrs["out"] = str(result.out)
    return sel


def score(sr: str, hr: str, scale: int, name: str = "sr", protocol: str = DEFAULT_PROTOCOL, metrics: list[str] | None = None,
          out: str | None = None, progress: bool = False, **kwargs: Any) -> Any:
    """Score SR images made elsewhere (``fsrbench score``): pairs of ``sr``/``hr`` folders matched by file name.

    Returns the per-image pandas DataFrame of the cell; ``df.attrs["metrics"]`` is the metrics.json document and
    ``df.attrs["out"]`` the results directory (default: a temporary one).  Other keyword arguments are fields of
    :class:`fsrbench.eval.score.ScoreSpec` (``dataset``, ``batch_size``, ``device``, ``limit`` ...)."""
    import tempfile

    from fsrbench.eval.score import ScoreSpec, score_run

    spec = ScoreSpec(sr=str(sr), hr=str(hr), scale=int(scale), name=name, protocol=protocol, metrics=metrics,
                     out=out or tempfile.mkdtemp(prefix="fsrbench-score-"), progress=progress, **kwargs)
    result = score_run(spec, log=(lambda msg: None) if not progress else None)
    df = result.per_image
    sel = df[(df["method"] == name) & (df["scale"] == int(scale))].reset_index(drop=True)
    sel.attrs["metrics"] = result.metrics
    sel.attrs["out"] = str(result.out)
    return sel


def _resolved(names: list[str]) -> list[str]:
    from fsrbench.eval.components import resolve_methods

    return resolve_methods(names)
