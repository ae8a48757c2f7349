"""tests/train/test_train_ddp.py::test_global_batchnorm_is_exact_in_float64: a float64 BatchNorm model, one step."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def make() -> nn.Module:
    """BatchNorm2d on maps, on 1x1 maps, and BatchNorm1d — float64."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4), nn.BatchNorm1d(4)).double()


def grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, run: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Gradients and float buffers of ``model`` after one MSE backward through ``run`` (default: the model)."""
    (((run or model)(x) - y) ** 2).mean().backward()
    return {**{k: p.grad.clone() for k, p in model.named_parameters()},
            **{k: b.clone() for k, b in model.named_buffers() if b.is_floating_point()}}


def run_shard(out: str) -> None:
    """Under an initialised 2-process group: rank r trains samples 2r, 2r+1 of :func:`data`; rank 0 saves."""
    from fsrbench.train.syncbn import convert_batchnorm

    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = data()
    model, n = convert_batchnorm(make(), "cpu")
    ddp = nn.parallel.DistributedDataParallel(model)
    per = x.shape[0] // world
    g = grads(model, x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per], run=ddp)
    if rank == 0:
        torch.save({"n": n, "grads": g}, out)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(4, 3, 6, 6, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
