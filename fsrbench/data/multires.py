"""UFVNet multi-resolution sets (docs/spec/data.md §4): the data side of evaluation at arbitrary LR sizes.

A multi-resolution set pairs every image of a base dataset with every LR size of a rate set:

* ``MR3``: rates 1/8, 1/4, 1/2 of 128 -> LR 16, 32, 64
* ``MR7``: rates 2/16 … 8/16        -> LR 16, 24, 32, 40, 48, 56, 64
* ``MR8``: rates 1/16 … 8/16        -> LR 8, 16, 24, …, 64

("balanced distribution among resolutions": testing uses every (image, rate) pair, so each rate has the
same images; training draws one rate uniformly per image per iteration, :func:`draw_lr_size`.)
``CelebA-MR8`` = :class:`MultiRes` over ``CelebA(split="test")`` with ``"MR8"`` etc.

LR at size s = :func:`fsrbench.imageio.make_lr` (PIL bicubic on uint8 HR) with ``size=s``; most rates do
not divide 128 into an integer scale. The evaluation side is the runner's ``--multires`` mode
(``fsrbench.eval.runner``, docs/multires.md): any-scale methods get each LR natively, fixed-scale models the
same LR resized to their input, and every row records its ``lr_size``.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from fsrbench.api import Dataset, Sample
from fsrbench.imageio import make_lr

HR = 128
MR_SETS: dict[str, tuple[int, ...]] = {
    "MR3": (16, 32, 64),
    "MR7": tuple(HR * k // 16 for k in range(2, 9)),
    "MR8": tuple(HR * k // 16 for k in range(1, 9)),
}


def lr_sizes(mr: str) -> tuple[int, ...]:
    key = mr.upper()
    if key not in MR_SETS:
        raise ValueError(f"unknown multi-resolution set {mr!r}; choose {', '.join(MR_SETS)}")
    return MR_SETS[key]


def rates(mr: str) -> tuple[float, ...]:
    return tuple(s / HR for s in lr_sizes(mr))


def pair_id(sample_id: str, lr_size: int) -> str:
    return f"{sample_id}@{lr_size}"


def split_pair_id(pid: str) -> tuple[str, int]:
    base, _, size = pid.rpartition("@")
    if not base or not size.isdigit():
        raise ValueError(f"{pid!r} is not a multi-resolution id (expected '<id>@<lr size>')")
    return base, int(size)


def pairs(ids: list[str], mr: str) -> list[tuple[str, int]]:
    """Every (id, lr_size) pair, image-major (all rates of image 1, then image 2, …)."""
    sizes = lr_sizes(mr)
    return [(i, s) for i in ids for s in sizes]


def draw_lr_size(rng: np.random.Generator, mr: str) -> int:
    """Training: one LR size drawn uniformly from the set (UFVNet's balanced sampling)."""
    sizes = lr_sizes(mr)
    return int(sizes[int(rng.integers(len(sizes)))])


class MultiRes(Dataset):
    """A base dataset seen as (image, LR size) pairs; ``load`` adds ``meta["lr_size"]`` and ``meta["lr"]``."""

    def __init__(self, base: Dataset, mr: str = "MR8", **options: Any) -> None:
        super().__init__(f"{getattr(base, 'display_name', base.name)}-{mr.upper()}", **options)
        self.base = base
        self.mr = mr.upper()
        self.sizes = lr_sizes(mr)
        self.name = f"{base.name}-{self.mr.lower()}"
        self.skipped = base.skipped

    @property
    def display_name(self) -> str:
        return f"{getattr(self.base, 'display_name', self.base.name)}-{self.mr}"

    def ids(self) -> list[str]:
        return [pair_id(i, s) for i, s in pairs(self.base.ids(), self.mr)]

    def load(self, sample_id: str) -> Sample:
        base_id, size = split_pair_id(sample_id)
        if size not in self.sizes:
            raise ValueError(f"LR size {size} is not in {self.mr} {self.sizes}")
        s = self.base.load(base_id)
        meta = dict(s.meta, base_id=base_id, lr_size=size, rate=size / s.hr.shape[0],
                    lr=make_lr(s.hr, size=size))
        return Sample(sample_id, s.hr, meta)

    def iter_rate(self, size: int) -> Iterator[str]:
        """The pair ids of one rate (for the per-rate breakdown)."""
        for i in self.base.ids():
            yield pair_id(i, size)

    def fingerprint(self) -> dict[str, Any]:
        fp = dict(self.base.fingerprint())
        fp.update(name=self.display_name, multires=self.mr, lr_sizes=list(self.sizes), n=len(self.ids()))
        return fp
