"""Test-only method plugins that misbehave in controlled ways (loaded with --plugin in tests)."""
from __future__ import annotations

import os
import time

import torch

from fsrbench import Batch, Method, Unavailable


class Slow(Method):
    """Bicubic, but slow (sleeps FSRBENCH_TEST_SLEEP seconds per batch) so tests can kill a run midway."""

    name = "slow"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        time.sleep(float(os.environ.get("FSRBENCH_TEST_SLEEP", "0.2")))
        return batch.upsampled


class Flaky(Method):
    """NaN for ids containing 'flip', wrong shape for 'rot+6', raises for 'rot-6', out of range otherwise."""

    name = "flaky"
    input = "upsampled"

    def super_resolve(self, batch: Batch) -> torch.Tensor:
        if any("rot-6" in i for i in batch.ids):
            raise RuntimeError("boom on a rotated face")
        if any("rot+6" in i for i in batch.ids):
            return batch.upsampled[:, :, :64]
        out = batch.upsampled * 1.5 - 0.1
        for k, i in enumerate(batch.ids):
            if "flip" in i:
                out[k, 0, 0, 0] = float("nan")
        return out


class NoWeights(Method):
    name = "noweights"

    def setup(self, scale, device="cpu", weights=None):
        raise Unavailable("no trained weights for noweights; train with: fsrbench train noweights --scale 8")


class BrokenSetup(Method):
    name = "brokensetup"

    def setup(self, scale, device="cpu", weights=None):
        raise ZeroDivisionError("bug in the plugin")


from fsrbench import Metric  # noqa: E402


class SlowMetric(Metric):
    """Mean absolute error, slowly (FSRBENCH_TEST_METRIC_SLEEP s per batch): lets tests kill a run while scoring."""

    name = "slowmae"
    higher_is_better = False
    ideal = 0.0

    def per_image(self, sr, hr, ctx):
        import numpy as np

        time.sleep(float(os.environ.get("FSRBENCH_TEST_METRIC_SLEEP", "0.2")))
        return {"slowmae": np.abs(sr.astype(float) - hr).mean(axis=(1, 2, 3))}
