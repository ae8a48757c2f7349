"""A tiny trainable method for the training-engine tests (CPU, milliseconds per step).

``TinySR``: upsampled input + a 3-conv residual network with a Dropout2d (so exact resume must restore the
RNG), L1 loss.  Test-only knobs in ``tiny.yaml``: ``step_sleep`` (seconds slept per step, so a test can kill
the process mid-run), ``nan_at_step`` (the loss becomes NaN from that call on, to test divergence) and
``nan_steps`` (the calls whose loss is NaN, only those).
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import torch
from torch import nn

from fsrbench.api import Batch, TrainableMethod, TrainBatch
from fsrbench.train.losses import l1


class TinyNet(nn.Module):
    def __init__(self, width: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinySR(TrainableMethod):
    name = "tiny-test"
    scales = (4, 8)
    input = "upsampled"
    in_all = False
    config_file = "tiny.yaml"
    description = "test-only tiny residual CNN"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls = 0

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        return TinyNet(int(config["width"]), float(config["dropout"]))

    def training_loss(self, model: Any, batch: TrainBatch, config: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        self.calls += 1
        if config.get("step_sleep"):
            time.sleep(float(config["step_sleep"]))
        sr = model(batch.upsampled)
        loss = l1(sr, batch.hr)
        if config.get("nan_at_step") and self.calls >= int(config["nan_at_step"]):
            loss = loss * float("nan")
        if self.calls in (config.get("nan_steps") or []):
            loss = loss * float("nan")
        return loss, {"l1": loss.detach()}

    def forward_sr(self, model: Any, batch: Batch) -> Any:
        return model(batch.upsampled)


class TinyPriorSR(TinySR):
    """TinySR that asks the engine for 68-point landmarks and records what it received."""

    name = "tiny-prior-test"
    train_priors = ("landmarks68",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[dict[str, Any]] = []

    def training_loss(self, model: Any, batch: TrainBatch, config: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        self.seen.append({k: (tuple(v.shape), v.dtype) for k, v in batch.priors.items()})
        return super().training_loss(model, batch, config)


class TinyHooksSR(TinySR):
    """TinySR with the optional engine hooks: its own optimiser (SGD, no schedule) and a start hook."""

    name = "tiny-hooks-test"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.started: list[Any] = []

    def on_train_start(self, model: Any, config: Mapping[str, Any], ctx: Any) -> None:
        self.started.append(ctx)

    def configure_optimizers(self, model: Any, config: Mapping[str, Any], total_steps: int) -> Any:
        self.total_steps = total_steps
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5), None


class TinyInitSR(TinySR):
    """TinySR whose build_model reports initial weights it loaded (``init_report``, recorded in run.json)."""

    name = "tiny-init-test"

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        model = super().build_model(scale, config)
        model.init_report = {"esrgan_init": "w.safetensors", "sha256": "ab" * 32, "loaded_tensors": 6}
        return model


class TinyAnySR(TinySR):
    """TinySR declared ``any_scale`` (one model for every LR size, like UFVNet): trained under one --scale,
    its weights serve every scale and multi-resolution "native" cells."""

    name = "tiny-any-test"
    any_scale = True


class TinyBNNet(nn.Module):
    """conv (no bias: BatchNorm cancels it, and its rounding-noise gradient would be all it learns) ->
    BatchNorm2d -> ReLU -> conv, residual (a BatchNorm model for the DDP equality tests)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyBNSR(TinySR):
    """TinySR with BatchNorm: under DDP its statistics must cover the global batch (sync_batchnorm)."""

    name = "tiny-bn-test"

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        return TinyBNNet(int(config["width"]))


class TinyPrepareSR(TinySR):
    """TinySR with a ``prepare_sample`` hook: per-sample CPU work in the data workers, recorded in the batch."""

    name = "tiny-prepare-test"

    def prepare_sample(self, sample: Mapping[str, Any], rng: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        return {"hr_mean": np.float32(sample["hr"].mean()), "draw": np.float32(rng.random())}

    def training_loss(self, model: Any, batch: TrainBatch, config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        self.seen = getattr(self, "seen", [])
        self.seen.append({"hr_mean": batch.priors["hr_mean"].clone(), "draw": batch.priors["draw"].clone(),
                          "batch_hr_mean": batch.hr.mean((1, 2, 3)) * 255.0, "contiguous": batch.hr.is_contiguous(),
                          "channels_last": batch.hr.is_contiguous(memory_format=torch.channels_last)})
        return super().training_loss(model, batch, config)
