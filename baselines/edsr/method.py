"""EDSR (Lim et al., CVPRW 2017) — baseline (16 blocks × 64) and full (32 × 256, res-scale 0.1) variants.

As in sanghyun-son/EDSR-PyTorch (METHODS.md §3): data in [0, 255] (``rgb_range``), frozen 1x1 mean-shift
convs subtracting/adding the DIV2K mean, head conv, R residual blocks without BatchNorm + conv and a
global skip, log2(scale) × (conv F→4F + PixelShuffle(2)) and a conv F→3.  Input: the LR image in [0,1]
(the model scales to ``rgb_range`` and back internally).  Scales ×4 and ×8 (one model per scale).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench_baselines.common import BaselineMethod

from .model import EDSR, VARIANTS


class EDSRMethod(BaselineMethod):
    """EDSR; ``variant`` = "baseline" (default, 1.52 M at ×4) or "full" (43.09 M at ×4)."""

    name = "edsr"
    scales = (4, 8)
    input = "lr"
    description = "EDSR (Lim et al., 2017): residual blocks without BN + pixel shuffle, L1"
    config_file = "configs/edsr.yaml"
    train_priors = ()

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"edsr supports scales {self.scales}, not {scale}")
        variant = str(self.options.get("variant", config.get("variant", "baseline")))
        if variant not in VARIANTS:
            raise ValueError(f"edsr variant must be one of {sorted(VARIANTS)}, not {variant!r}")
        spec = dict(VARIANTS[variant])
        for key in ("blocks", "features", "res_scale"):  # explicit overrides (None = variant value)
            if config.get(key) is not None:
                spec[key] = config[key]
        return EDSR(scale, int(spec["blocks"]), int(spec["features"]), float(spec["res_scale"]),
                    float(config.get("rgb_range", 255.0)))

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        rng = float(config.get("rgb_range", 255.0))
        sr = model(batch.lr * rng, in_rgb_range=True)
        loss = F.l1_loss(sr, batch.hr * rng)
        return loss, {"l1": loss.detach()}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch.lr)
