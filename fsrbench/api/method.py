"""Contract of SR methods: :class:`Method`, :class:`TrainableMethod` and what they receive (:class:`Batch`,
:class:`TrainBatch`).  See :mod:`fsrbench.api` for the conventions every component relies on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from fsrbench.weights import load_for_eval


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

    kind: ClassVar[str] = "methods"  # the registry a plugin subclass belongs to (--plugin infers it)
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
    * ``training_loss(model, batch: TrainBatch, config) -> (loss, {name: float or detached 0-dim tensor})``
    * ``forward_sr(model, batch: Batch) -> Tensor[B,3,hr,hr]`` (inference; default: ``model(input)``)

    plus ``config_file``: a YAML file next to the module holding the paper's recipe under ``default`` and
    a CPU-sized ``smoke`` preset (every [CHOICE] of the method's docs/methods/ page is a key there).
    ``train_priors`` lists the priors the engine must put into ``TrainBatch.priors``; for each prior ``p`` the engine also adds a
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
    #: state-dict key prefixes of modules that only training uses (e.g. ``("discriminator.",)`` for a GAN):
    #: a reference-weights export leaves them out, and evaluation loads a file without them (those modules keep
    #: their initial values; ``forward_sr`` must not use them). Every other key must be in the file.
    training_only_state: ClassVar[tuple[str, ...]] = ()

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
        self.model, self.weights_card = load_for_eval(self, scale, device, weights, self.options)

    def super_resolve(self, batch: Batch) -> Any:
        import torch

        with torch.no_grad():
            return self.forward_sr(self.model, batch).clamp(0, 1)
