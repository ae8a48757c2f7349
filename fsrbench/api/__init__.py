"""The plugin contracts: what a method, a metric and a dataset look like to the harness.

A user submits a method by writing one class::

    import torch
    from fsrbench import Method, Batch

    class Nearest(Method):
        name = "nearest"
        scales = (4, 8)
        input = "lr"                  # or "upsampled": the harness PIL-bicubic-upsamples to 128x128
        def super_resolve(self, batch: Batch) -> torch.Tensor:
            return torch.nn.functional.interpolate(batch.lr, size=batch.hr_size, mode="nearest")

and registering it under the entry-point group ``fsrbench.methods`` (or passing
``--plugin file.py:Nearest``).  Images are float32 RGB tensors in [0, 1], NCHW, on ``self.device``.

Conventions every component can rely on:

* the harness owns degradation (the protocol's PIL-bicubic LR), upsampling for ``input="upsampled"``,
  uint8 quantisation of the SR output before any metric, and every file written;
* a method or metric that cannot run (no weights, missing model file) raises :class:`Unavailable` with
  a one-line reason naming the fix; the run reports it and goes on.
"""
from __future__ import annotations

from fsrbench.api.dataset import Dataset, Sample
from fsrbench.api.face import (AUEstimator, FaceBox, FERModel, IdentityModel, LandmarkModel, LandmarkResult,
                               as_rgb_u8, face_image)
from fsrbench.api.method import Batch, Method, TrainableMethod, TrainBatch
from fsrbench.api.metric import CellContext, Metric
from fsrbench.errors import DataError, Unavailable

__all__ = ["AUEstimator", "Batch", "CellContext", "DataError", "Dataset", "FERModel", "FaceBox", "IdentityModel",
           "LandmarkModel", "LandmarkResult", "Method", "Metric", "Sample", "TrainableMethod", "TrainBatch",
           "Unavailable", "as_rgb_u8", "face_image"]
