"""A complete fsrbench method plugin: nearest-neighbour upsampling (docs/plugins.md walks through it).

Run it without installing anything::

    fsrbench run --plugin docs/examples/nearest_plugin.py:Nearest --methods nearest,bicubic --datasets demo

or register it in your package's pyproject.toml::

    [project.entry-points."fsrbench.methods"]
    nearest = "my_package.nearest_plugin:Nearest"
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fsrbench import Batch, Method


class Nearest(Method):
    name = "nearest"
    scales = (4, 8)  # the scales it supports (any_scale = True would accept any LR size)
    input = "lr"  # receives batch.lr ([B,3,16,16] at x8); "upsampled" would use batch.upsampled
    description = "nearest-neighbour upsampling (example plugin)"

    def setup(self, scale: int, device="cpu", weights=None) -> None:
        super().setup(scale, device, weights)  # load weights here; raise fsrbench.Unavailable to be skipped

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        # float32 [B,3,s,s] in [0,1] on self.device -> [B,3,128,128] in [0,1]
        return F.interpolate(batch.lr, size=(batch.hr_size, batch.hr_size), mode="nearest")

    def info(self) -> dict:
        return {"params": 0}
