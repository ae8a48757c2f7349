"""Sharded evaluation with ``torchrun`` (torch.distributed, gloo for coordination).

``torchrun --nproc_per_node N -m fsrbench run ...`` starts N ranks. Each rank scores every N-th *batch* of
every cell (batches keep the single-process composition, so per-image results are bit-identical to a
one-process run); rank 0 holds the results-directory lock, merges the shards and writes every file.
``fsrbench run --workers N`` launches exactly that through ``torch.distributed.run``.
"""
from __future__ import annotations

import datetime
import os
from typing import Any


def rank_world() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) outside torchrun."""
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


class Group:
    """A gloo process group used only for barriers and small broadcasts between evaluation ranks."""

    def __init__(self) -> None:
        self.rank, self.world = rank_world()
        self._pg: Any = None
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
            self._pg = dist.group.WORLD

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
