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

from .common import BaselineMethod

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

VARIANTS = {"baseline": {"blocks": 16, "features": 64, "res_scale": 1.0},
            "full": {"blocks": 32, "features": 256, "res_scale": 0.1}}


class MeanShift(nn.Module):
    """Adds ``sign``·mean·rgb_range per channel (the official frozen 1x1 conv with identity weights and
    std 1, held as a buffer so that it is not counted or trained as a parameter)."""

    def __init__(self, rgb_range: float, mean: tuple[float, float, float] = DIV2K_MEAN, sign: int = -1) -> None:
        super().__init__()
        self.register_buffer("shift", sign * rgb_range * torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


class ResBlock(nn.Module):
    """conv3x3 → ReLU → conv3x3, scaled by ``res_scale``, plus identity (no BatchNorm)."""

    def __init__(self, features: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(features, features, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR on [0,1] inputs; returns [0,1]-range outputs (computed internally in [0, rgb_range])."""

    def __init__(self, scale: int, blocks: int = 16, features: int = 64, res_scale: float = 1.0,
                 rgb_range: float = 255.0) -> None:
        super().__init__()
        if scale & (scale - 1) or scale < 2:
            raise ValueError(f"EDSR supports power-of-two scales, not {scale}")
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)],
                                  nn.Conv2d(features, features, 3, padding=1))
        up: list[nn.Module] = []
        for _ in range(scale.bit_length() - 1):
            up += [nn.Conv2d(features, 4 * features, 3, padding=1), nn.PixelShuffle(2)]
        self.tail = nn.Sequential(*up, nn.Conv2d(features, 3, 3, padding=1))

    def forward_range(self, x: torch.Tensor) -> torch.Tensor:
        """x in [0, rgb_range] → SR in [0, rgb_range] (the original EDSR forward)."""
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_range(x * self.rgb_range) / self.rgb_range


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

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        rng = float(config.get("rgb_range", 255.0))
        sr = model.forward_range(batch.lr * rng)
        loss = F.l1_loss(sr, batch.hr * rng)
        return loss, {"l1": float(loss.detach())}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch.lr)
