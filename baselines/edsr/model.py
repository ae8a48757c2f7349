"""The EDSR network (Lim et al., CVPRW 2017); variants and the method are in :mod:`.method`."""
from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor, in_rgb_range: bool = False) -> torch.Tensor:
        """x in [0,1] → SR in [0,1]; ``in_rgb_range=True``: x and SR in [0, rgb_range] (:meth:`forward_range`,
        reachable through a DistributedDataParallel wrapper, which only forwards ``forward``)."""
        if in_rgb_range:
            return self.forward_range(x)
        return self.forward_range(x * self.rgb_range) / self.rgb_range
