"""Probe methods for the multi-resolution runner tests: their SR is a fixed function of what they receive.

``probe-lr`` (input "lr", x4/x8): nearest-neighbour enlargement of ``batch.lr`` (so the SR shows exactly which
LR the harness gave the model); ``probe-up`` (input "upsampled", x4/x8): ``batch.upsampled`` unchanged;
``probe-any`` (any scale, input "lr"): nearest-neighbour enlargement of the LR it gets, whatever its size.
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from fsrbench.api import Batch, Method


class ProbeLR(Method):
    name = "probe-lr"
    scales = (4, 8)
    input = "lr"
    in_all = False

    def super_resolve(self, batch: Batch) -> Any:
        return F.interpolate(batch.lr, size=(batch.hr_size, batch.hr_size), mode="nearest")


class ProbeUp(ProbeLR):
    name = "probe-up"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> Any:
        return batch.upsampled


class ProbeAny(ProbeLR):
    name = "probe-any"
    any_scale = True
