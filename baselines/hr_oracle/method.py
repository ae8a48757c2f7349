"""``hr-oracle``: returns the HR image itself — a sanity reference, not a method.

Every metric must give its ideal value for it (PSNR = inf, SSIM = 1, LPIPS = 0, ECM at its floor,
AU F1 = 1, NME = 0, identity cosine = 1). It is excluded from ``--methods all`` and must be asked for by
name. It is the only method that receives the HR image (``priors = ("hr",)``).
"""
from __future__ import annotations

from typing import Any

from fsrbench.api import Batch, Method


class HROracleMethod(Method):
    name = "hr-oracle"
    scales = (4, 8)
    any_scale = True
    input = "lr"
    priors = ("hr",)
    in_all = False
    description = "returns the HR ground truth (sanity reference: every metric must be ideal)"

    def super_resolve(self, batch: Batch) -> Any:
        return batch.priors["hr"]

    def info(self) -> dict[str, Any]:
        return {"params": 0}
