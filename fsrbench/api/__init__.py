"""The plugin contracts: what a method, a metric and a dataset look like to the harness.

A user submits a method by writing one class::

    import torch
    from fsrbench import Method, Batch

    class Nearest(Method):
        name = "nearest"
        scales = (4, 8)
        input = "lr"                  # or "upsampled": the harness PIL-bicubic-upsamples to 128x128
        def super_resolve(self, batch: Batch) -> torch.Tensor:
            return torch.nn.functional.interpolate(batch.lr, size=batch.hr_size, mode="nearest")

and registering it under the entry-point group ``fsrbench.methods`` (or passing
``--plugin file.py:Nearest``).  Images are float32 RGB tensors in [0, 1], NCHW, on ``self.device``.

Conventions every component can rely on:

* the harness owns degradation (the protocol's PIL-bicubic LR), upsampling for ``input="upsampled"``,
  uint8 quantisation of the SR output before any metric, and every file written;
* a method or metric that cannot run (no weights, missing model file) raises :class:`Unavailable` with
  a one-line reason naming the fix; the run reports it and goes on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from fsrbench.errors import DataError, Unavailable


# ------------------------------------------------------------------------------------------------
# methods
# ------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """What a method receives. Tensors are float32 in [0, 1], NCHW, already on the method's device."""

    ids: list[str]
    lr: Any  # torch.Tensor [B,3,s,s], s = hr_size // scale (or any size for arbitrary-scale methods)
    upsampled: Any  # torch.Tensor [B,3,hr_size,hr_size]: the protocol's bicubic upsampling of lr
    scale: int  # 0 in a multi-resolution "native" cell: lr is any size (read it from lr.shape)
    hr_size: int = 128
    priors: dict[str, Any] = field(default_factory=dict)  # e.g. {"landmarks478": Tensor[B,478,3]}

    def __len__(self) -> int:
        return len(self.ids)


class Method:
    """Base class of SR methods. Subclasses set the class attributes and implement ``super_resolve``."""

    name: ClassVar[str] = ""
    scales: ClassVar[tuple[int, ...]] = (4, 8)
    any_scale: ClassVar[bool] = False  # True if the method accepts any LR size (e.g. UFVNet)
    input: ClassVar[str] = "lr"  # "lr" | "upsampled"
    priors: ClassVar[tuple[str, ...]] = ()  # test-time priors the harness must supply
    trainable: ClassVar[bool] = False
    description: ClassVar[str] = ""
    in_all: ClassVar[bool] = True  # included in `--methods all`

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)
        self.device: Any = "cpu"
        self.scale: int | None = None

    def setup(self, scale: int, device: Any = "cpu", weights: str | None = None) -> None:
        """Prepare for ``scale`` on ``device`` (load weights here). Raise :class:`Unavailable` to skip."""
        self.scale = scale
        self.device = device

    def super_resolve(self, batch: Batch) -> Any:  # -> torch.Tensor [B,3,hr,hr] in [0,1]
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Facts shown in listings and leaderboards (parameters etc.)."""
        return {}

    def supports(self, scale: int) -> bool:
        return self.any_scale or scale in self.scales


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
@dataclass
class CellContext:
    """Everything a metric may need about the (dataset, scale, method) cell being scored."""

    dataset: str
    scale: int
    method: str
    protocol: Any  # fsrbench.protocols.Protocol
    device: Any = "cpu"
    cache: Any = None  # fsrbench.engine.cache.Cache (on-disk, keyed by content hash + model id)
    options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"fer": "mini-xception"}
    meta: list[dict[str, Any]] = field(default_factory=list)  # per-image metadata of the current batch
    ids: list[str] = field(default_factory=list)  # image ids of the current batch
    memo: dict[str, Any] = field(default_factory=dict)  # per-batch scratch shared between metrics


class Metric:
    """Base class of metrics.

    ``per_image`` receives uint8 RGB arrays [B,H,W,3] (SR already clipped and rounded by the harness)
    and returns one array per column in ``columns`` (NaN = could not be computed for that image).
    ``summarize`` turns the per-image table of one cell into dataset-level numbers.
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...]] = ()  # per-image columns; default (name,)
    ideal: ClassVar[float | None] = None  # value of a perfect reconstruction (hr-oracle check)
    description: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        from fsrbench.protocols import get_protocol

        self.protocol = get_protocol(protocol) if not hasattr(protocol, "metric") else protocol
        self.options = dict(options)

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return cls.columns or (cls.name,)

    def setup(self, device: Any = "cpu") -> None:
        """Load models once per process. Raise :class:`Unavailable` if the metric cannot run."""

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        """Dataset-level summary from the cell's per-image table. Default: mean with a 95% CI."""
        from fsrbench.metrics.stats import mean_ci

        col = self.column_names()[0]
        return {self.name: mean_ci(table[col].to_numpy(dtype=float))}

    # convenience for the Python API: tensors in [0,1] -> per-image values of the primary column
    def __call__(self, sr: Any, hr: Any, scale: int | None = None) -> np.ndarray:
        from fsrbench.imageio import tensor_to_uint8

        ctx = CellContext(dataset="api", scale=scale or 0, method="api", protocol=self.protocol)
        if scale is None:
            self.protocol.crop_border(None)  # raises if the protocol's border crop depends on the scale
        out = self.per_image(tensor_to_uint8(sr), tensor_to_uint8(hr), ctx)
        return out[self.column_names()[0]]


# ------------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    id: str  # stable and unique within the dataset (used as the row key of every table)
    hr: np.ndarray  # uint8 [hr_size, hr_size, 3] RGB
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"emotion": "happiness", "identity": ...}


class Dataset:
    """Base class of datasets: an ordered list of ids and a loader for one id.

    ``skipped`` lists (file, reason) for inputs found while listing that cannot be used; ``load`` raises
    :class:`DataError` for an input that turns out to be unreadable, and the harness records it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    hr_size: int = 128

    def __init__(self, arg: str | None = None, **options: Any) -> None:
        self.arg = arg
        self.options = dict(options)
        self.skipped: list[tuple[str, str]] = []

    @property
    def display_name(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"

    def ids(self) -> list[str]:
        raise NotImplementedError

    def load(self, sample_id: str) -> Sample:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data (stored in run.json): ids hash etc."""
        import hashlib

        h = hashlib.sha256("\n".join(self.ids()).encode()).hexdigest()
        return {"name": self.display_name, "n": len(self.ids()), "ids_sha256": h}

    def __len__(self) -> int:
        return len(self.ids())


# ------------------------------------------------------------------------------------------------
# trainable methods (the training engine, fsrbench/train, runs these)
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainBatch:
    """One training batch. Tensors float32 in [0,1] NCHW on the training device."""

    hr: Any  # [B,3,hr,hr]
    lr: Any  # [B,3,hr/scale,hr/scale]
    upsampled: Any  # [B,3,hr,hr] protocol bicubic upsampling of lr
    scale: int
    priors: dict[str, Any] = field(default_factory=dict)  # e.g. "heatmaps68", "parsing", "landmarks478"
    ids: list[str] = field(default_factory=list)

    def to_eval_batch(self) -> Batch:
        return Batch(ids=self.ids, lr=self.lr, upsampled=self.upsampled, scale=self.scale,
                     hr_size=int(self.hr.shape[-1]), priors=self.priors)


class TrainableMethod(Method):
    """A method the shared training engine can train. A subclass provides exactly three things:

    * ``build_model(scale, config) -> torch.nn.Module``
    * ``training_loss(model, batch: TrainBatch, config) -> (loss, {name: float})``
    * ``forward_sr(model, batch: Batch) -> Tensor[B,3,hr,hr]`` (inference; default: ``model(input)``)

    plus ``config_file``: a YAML file next to the module holding the paper's recipe under ``default`` and
    a CPU-sized ``smoke`` preset (every [CHOICE] of METHODS.md is a key there). ``train_priors`` lists
    the priors the engine must put into ``TrainBatch.priors``; for each prior ``p`` the engine also adds a
    boolean mask ``p + "_ok"`` [B] (False where the prior could not be computed for that image).

    ``training_loss`` receives the model as the engine runs it — possibly wrapped in
    DistributedDataParallel — and must call ``model(...)`` (not ``model.module``) so gradients are
    synchronised. Two optional hooks are called when a subclass defines them:

    * ``configure_optimizers(model, config, total_steps) -> (optimizer, scheduler | None)`` or ``None``
      to use the engine's optimiser/schedule from the config;
    * ``on_train_start(model, config, ctx)`` once before the first step (e.g. to load initial weights).
    """

    trainable: ClassVar[bool] = True
    config_file: ClassVar[str] = ""  # path relative to the module file, e.g. "configs/srcnn.yaml"
    train_priors: ClassVar[tuple[str, ...]] = ()

    def build_model(self, scale: int, config: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def training_loss(self, model: Any, batch: TrainBatch, config: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        raise NotImplementedError

    def forward_sr(self, model: Any, batch: Batch) -> Any:
        x = batch.upsampled if self.input == "upsampled" else batch.lr
        return model(x)

    # -- evaluation-side plumbing (implemented once, by the training engine) ----------------------
    def setup(self, scale: int, device: Any = "cpu", weights: str | None = None) -> None:
        super().setup(scale, device, weights)
        from fsrbench.train.checkpoints import load_for_eval  # engine-owned: resolves + verifies weights

        self.model, self.weights_card = load_for_eval(self, scale, device, weights, self.options)

    def super_resolve(self, batch: Batch) -> Any:
        import torch

        with torch.no_grad():
            return self.forward_sr(self.model, batch).clamp(0, 1)
