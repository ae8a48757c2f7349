"""SCAB — RCAB plus convolutional multi-head "transposed" self-attention (METHODS.md §9.2, paper eq. 20–21).

SCAB(x) = x + RCAB_body(x) + Attn(x), with
* RCAB_body = conv3×3 → ReLU → conv3×3 → channel attention (RCAN, reduction r);
* Attn = Restormer MDTA: conv1×1 C→3C → depth-wise conv3×3 → split Q, K, V → ``heads`` heads of C/heads
  channels → L2-normalise Q and K over the spatial axis → softmax(Q Kᵀ · τ) (a (C/h)×(C/h) attention per
  head, τ a learned temperature per head) → × V → conv1×1 C→C.
Channel (C×C) attention is used because spatial attention at 128² would need 16384² entries.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .lpf import ChannelAttention


class TransposedAttention(nn.Module):
    def __init__(self, channels: int = 64, heads: int = 4, bias: bool = True) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias)
        self.proj = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        k = F.normalize(k.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        v = v.reshape(b, self.heads, c // self.heads, h * w)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.proj((attn @ v).reshape(b, c, h, w))


class SCAB(nn.Module):
    def __init__(self, channels: int = 64, reduction: int = 16, heads: int = 4, attn_bias: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1), ChannelAttention(channels, reduction))
        self.attn = TransposedAttention(channels, heads, attn_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) + self.attn(x)
