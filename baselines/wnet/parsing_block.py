"""W-Net Parsing Block (METHODS.md §9.2, paper eq. 2–8): predicts the binary skin parsing map.

shallow conv3×3 3→C → ``res_blocks`` residual blocks (conv3×3–ReLU–conv3×3, identity add) → hourglass of
depth ``hg_depth`` (BN-free bottleneck residual modules, max-pool down, nearest up; the shared
``fsrbench_baselines.common.Hourglass``) = F_deep → multi-scale attention unit:
y1 = act(conv1×1(F_deep)) (C→w), y2 = act(conv3×3) (C→w), y3 = act(conv3×3) (C→w),
y4 = act(conv3×3([y1,y2,y3])) (3w→2w, "doubled"), y5 = act(conv3×3(y3)) (w→w/2, "halved"),
c = [y2, y4, y5]; y6 = CA(c) + SA(c); y7 = conv1×1(y6) (→C); out = conv3×3(y7 + F_deep) (C→3).
Widths (C = 64, w = 32) and counts are config keys. Input: the 128² bicubic-upsampled LR in [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from fsrbench_baselines.common import BottleneckNoBN, Hourglass

from .lpf import ChannelAttention, SpatialAttention


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ParsingBlock(nn.Module):
    def __init__(self, channels: int = 64, branch: int = 32, res_blocks: int = 2, hg_depth: int = 4,
                 out_channels: int = 3, ca_reduction: int = 16, sa_kernel: int = 7,
                 out_act: str = "none") -> None:
        super().__init__()
        if out_act not in ("none", "sigmoid"):
            raise ValueError(f"parsing out_act must be none|sigmoid, not {out_act!r}")
        c, w = channels, branch
        act = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.shallow = nn.Conv2d(3, c, 3, padding=1)
        self.res = nn.Sequential(*[ResBlock(c) for _ in range(res_blocks)])
        self.hourglass = Hourglass(hg_depth, c, BottleneckNoBN, "nearest")
        self.y1 = nn.Sequential(nn.Conv2d(c, w, 1), act())
        self.y2 = nn.Sequential(nn.Conv2d(c, w, 3, padding=1), act())
        self.y3 = nn.Sequential(nn.Conv2d(c, w, 3, padding=1), act())
        self.y4 = nn.Sequential(nn.Conv2d(3 * w, 2 * w, 3, padding=1), act())
        self.y5 = nn.Sequential(nn.Conv2d(w, w // 2, 3, padding=1), act())
        cat = w + 2 * w + w // 2
        self.ca = ChannelAttention(cat, ca_reduction)
        self.sa = SpatialAttention(sa_kernel)
        self.y7 = nn.Conv2d(cat, c, 1)
        self.out = nn.Conv2d(c, out_channels, 3, padding=1)
        self.out_act = out_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.hourglass(self.res(self.shallow(x)))
        y1, y2, y3 = self.y1(deep), self.y2(deep), self.y3(deep)
        y4 = self.y4(torch.cat([y1, y2, y3], 1))
        y5 = self.y5(y3)
        c = torch.cat([y2, y4, y5], 1)
        y7 = self.y7(self.ca(c) + self.sa(c))
        out = self.out(y7 + deep)
        return torch.sigmoid(out) if self.out_act == "sigmoid" else out
