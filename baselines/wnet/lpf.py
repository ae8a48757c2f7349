"""W-Net attention units and the LR–Parsing Fusion module (LPF) (METHODS.md §9.2, paper eq. 9–11).

* :class:`ChannelAttention` — RCAN CA: global average pool → 1×1 (C→C/r) → ReLU → 1×1 (C/r→C) → sigmoid,
  multiplies the input.
* :class:`SpatialAttention` — CBAM SA: k×k conv on [channel mean, channel max] → sigmoid, multiplies the
  input.
* :class:`PixelAttention` — PAN-style PA: 1×1 conv C→C + sigmoid (a per-pixel, per-channel weight map;
  returns the weights).
* :class:`LPF` — inputs F_LR [B,C,H,W] and a parsing map F_par [B,P,H,W] (P = 1 by default, see the
  broadcasting CHOICE in §9.2):
  A = conv3×3(F_LR), B = conv3×3(F_LR), P' = conv3×3(F_par) (P→C);
  F_att = conv3×3(CA(A) + SA(A)); σ = PA(B + P'); F_pix = σ·B + (1−σ)·P';
  F_fuse1 = conv3×3([F_att, P']) (2C→C); F_fuse2 = conv1×1(F_pix + F_LR + F_par) (F_par broadcast);
  output = F_fuse1 + F_fuse2 + B + P'.
  With ``inner_checkpoint`` (W-Net's ``checkpoint_lpf``) the attention branch, the pixel branch and the
  two fusion convs each run under activation checkpointing (the 1024² LPF alone holds ~4 GiB of
  activations per image otherwise).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(mid, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(desc))


class PixelAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


class LPF(nn.Module):
    """LR–Parsing Fusion of ``channels``-wide features with a ``parsing_channels``-channel parsing map."""

    def __init__(self, channels: int = 64, parsing_channels: int = 1, ca_reduction: int = 16,
                 sa_kernel: int = 7) -> None:
        super().__init__()
        if parsing_channels not in (1, channels):
            raise ValueError(f"parsing_channels must be 1 (broadcast) or {channels}, got {parsing_channels}")
        c = channels
        self.conv_a = nn.Conv2d(c, c, 3, padding=1)
        self.conv_b = nn.Conv2d(c, c, 3, padding=1)
        self.conv_p = nn.Conv2d(parsing_channels, c, 3, padding=1)
        self.ca = ChannelAttention(c, ca_reduction)
        self.sa = SpatialAttention(sa_kernel)
        self.conv_att = nn.Conv2d(c, c, 3, padding=1)
        self.pa = PixelAttention(c)
        self.fuse1 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.fuse2 = nn.Conv2d(c, c, 1)
        self.inner_checkpoint = False  # set by WNet (checkpoint_lpf): checkpoint each branch separately

    # the three branches as functions, so each can run under activation checkpointing
    def _attention(self, f_lr: torch.Tensor) -> torch.Tensor:
        a = self.conv_a(f_lr)
        return self.conv_att(self.ca(a) + self.sa(a))

    def _pixel(self, f_lr: torch.Tensor, f_par: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.conv_b(f_lr)
        p = self.conv_p(f_par)
        sigma = self.pa(b + p)
        return b, p, sigma * b + (1 - sigma) * p

    def _fuse(self, f_att: torch.Tensor, p: torch.Tensor, f_pix: torch.Tensor, f_lr: torch.Tensor,
              f_par: torch.Tensor) -> torch.Tensor:
        return self.fuse1(torch.cat([f_att, p], 1)) + self.fuse2(f_pix + f_lr + f_par)

    def forward(self, f_lr: torch.Tensor, f_par: torch.Tensor) -> torch.Tensor:
        if f_par.shape[-2:] != f_lr.shape[-2:]:
            raise ValueError(f"LPF: parsing map {tuple(f_par.shape[-2:])} != features {tuple(f_lr.shape[-2:])}")
        if self.inner_checkpoint and torch.is_grad_enabled():
            f_att = checkpoint(self._attention, f_lr, use_reentrant=False)
            b, p, f_pix = checkpoint(self._pixel, f_lr, f_par, use_reentrant=False)
            fused = checkpoint(self._fuse, f_att, p, f_pix, f_lr, f_par, use_reentrant=False)
        else:
            f_att = self._attention(f_lr)
            b, p, f_pix = self._pixel(f_lr, f_par)
            fused = self._fuse(f_att, p, f_pix, f_lr, f_par)
        return fused + b + p
