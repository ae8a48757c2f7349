"""MPEGAN discriminator (METHODS.md §8.4 [CHOICE]): the SRGAN discriminator (Ledig et al. 2017).

Input: an image [B,3,H,W] in [0,1] (H = W = 128 in fsrbench); output: one logit per image [B].
Eight conv3×3 layers 64→64→128→128→256→256→512→512 with LeakyReLU(0.2), BN after every conv but the
first, stride 2 on every second conv (128² → 8²); then dense 1024 + LeakyReLU(0.2) and dense 1.
``head="flatten"`` is SRGAN's dense layer over the flattened 512×8×8 map (38.2 M parameters in all at
128²); ``head="avgpool"`` averages the map first (a common lighter variant, 5.2 M in all).
"""
from __future__ import annotations

import torch
from torch import nn


class SRGANDiscriminator(nn.Module):
    def __init__(self, in_size: int = 128, base: int = 64, head: str = "flatten") -> None:
        super().__init__()
        if head not in ("flatten", "avgpool"):
            raise ValueError(f"discriminator head must be 'flatten' or 'avgpool', not {head!r}")
        chans = [base, base, 2 * base, 2 * base, 4 * base, 4 * base, 8 * base, 8 * base]
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(chans):
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2d(c_in, c, 3, stride, 1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head_kind = head
        side = in_size // 16
        if head == "flatten":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, 1024),
                                      nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 1024),
                                      nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, img01: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(img01 * 2.0 - 1.0)).squeeze(1)
