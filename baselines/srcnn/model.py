"""The SRCNN network (Dong et al., ECCV 2014 / TPAMI 2015); the method is in :mod:`.method`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRCNN(nn.Module):
    """SRCNN f1-f2-f3 with n1=64, n2=32 filters on 3-channel input."""

    def __init__(self, mapping_kernel: int = 5, channels: int = 3, n1: int = 64, n2: int = 32,
                 init_std: float | None = 1e-3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, n1, 9, padding=4)
        self.conv2 = nn.Conv2d(n1, n2, mapping_kernel, padding=mapping_kernel // 2)
        self.conv3 = nn.Conv2d(n2, channels, 5, padding=2)
        if init_std is not None:
            for conv in (self.conv1, self.conv2, self.conv3):
                nn.init.normal_(conv.weight, 0.0, init_std)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
