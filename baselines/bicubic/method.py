"""Bicubic baseline: the protocol's own PIL-bicubic upsampling of the LR input (METHODS.md §1).

It has no parameters. Because the harness already provides ``batch.upsampled`` (PIL bicubic on uint8,
exactly the resizer that made the LR), the method returns it unchanged: the bicubic row is computed by the
same code path as every other method's input, never by a different interpolation.
"""
from __future__ import annotations

from typing import Any

from fsrbench.api import Batch, Method


class BicubicMethod(Method):
    name = "bicubic"
    scales = (4, 8)
    any_scale = True
    input = "upsampled"
    description = "PIL bicubic upsampling of the LR image (the protocol's resizer); no parameters"

    def super_resolve(self, batch: Batch) -> Any:
        return batch.upsampled

    def info(self) -> dict[str, Any]:
        return {"params": 0}
