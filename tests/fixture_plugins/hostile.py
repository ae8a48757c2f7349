"""Test-only plugins of the second attack campaign (issue 24): names that address other folders, a plugin that
takes a built-in's name, methods that exit, interrupt, hang or print, a metric whose setup raises."""
from __future__ import annotations

import os
import sys
import time

import torch

from fsrbench import Batch, Method, Metric


class Dot(Method):
    """Named "." : its cell folder would be the scale folder itself (deleting every other method's cell)."""

    name = "."
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        return batch.upsampled


class DotDot(Dot):
    name = ".."


class Slash(Dot):
    name = "a/../../b"


class ShadowBicubic(Method):
    """Takes the built-in name "bicubic" and returns black images."""

    name = "bicubic"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        return batch.upsampled * 0


class Exits(Method):
    name = "exits"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        sys.exit(3)


class HardExit(Method):
    name = "hard-exit"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        os._exit(7)


class Interrupts(Method):
    name = "interrupts"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        raise KeyboardInterrupt


class Hangs(Method):
    name = "hangs"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        time.sleep(3600)
        return batch.upsampled


class Prints(Method):
    """Bicubic that chats on stdout (Python print and a raw write to file descriptor 1)."""

    name = "prints"
    input = "upsampled"

    def setup(self, scale, device="cpu", weights=None):
        super().setup(scale, device, weights)
        print("PLUGIN-SETUP-CHATTER")

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        print("PLUGIN-PRINT-CHATTER")
        os.write(1, b"PLUGIN-FD1-CHATTER\n")
        return batch.upsampled


class SetupFails(Metric):
    """A metric whose setup raises a plain RuntimeError (not Unavailable)."""

    name = "setupfails"

    def setup(self, device="cpu"):
        raise RuntimeError("metric model file is corrupt")

    def per_image(self, sr, hr, ctx):
        raise AssertionError("never called")


class ExitsMetric(Metric):
    """A metric that calls sys.exit while scoring."""

    name = "exitsmetric"

    def per_image(self, sr, hr, ctx):
        sys.exit(4)
