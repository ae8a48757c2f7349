"""Distributed training glue: torchrun environment -> process group (NCCL on GPU, gloo on CPU), helpers.

``torchrun --nproc_per_node N -m fsrbench train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the
engine runs as a single process (world size 1, no process group).  Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: Any = "cpu"
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, before any process group exists."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "auto", timeout_s: float | None = None) -> DistInfo:
    """Initialise the process group when launched by torchrun and pick this process's device.

    ``timeout_s``: the process group's timeout for collectives and barriers (config ``ddp_timeout_s``; NCCL's
    own default is 10 minutes)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible; use --device cpu")
        dev: Any = torch.device("cuda", local_rank if device == "cuda" else torch.device(device).index or 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device)
    info = DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        if timeout_s:
            from datetime import timedelta

            kwargs["timeout"] = timedelta(seconds=float(timeout_s))
        dist.init_process_group(**kwargs)
        info.initialized_here = True
    return info


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over all processes (identity in a single process)."""
    if not info.distributed:
        return value
    v = value.detach().clone()
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v / info.world


def all_max(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Maximum of a tensor over all processes (identity in a single process)."""
    if not info.distributed:
        return value
    v = value.detach().clone()
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    return v


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every process when ``flag`` is true on any of them (keeps ranks in lock-step)."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (in rank order) on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else the model itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if info.device.type == "cuda":
        return DDP(model, device_ids=[info.device.index], output_device=info.device.index,
                   find_unused_parameters=find_unused_parameters)
    return DDP(model, find_unused_parameters=find_unused_parameters)


def sync_batchnorm(model: torch.nn.Module, info: DistInfo) -> tuple[torch.nn.Module, int]:
    """Under DDP, every BatchNorm layer of ``model`` normalised over the global batch (config
    ``sync_batchnorm``): ``torch.nn.SyncBatchNorm`` on CUDA, :class:`fsrbench.train.syncbn.GlobalBatchNorm`
    elsewhere.  Call before the optimiser is built; returns (model, layers converted)."""
    if not info.distributed:
        return model, 0
    from fsrbench.train.syncbn import convert_batchnorm

    return convert_batchnorm(model, info.device.type)
