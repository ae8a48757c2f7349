"""The FSRNet generator (Chen et al., CVPR 2018); the method and its losses are in :mod:`.method`."""
from __future__ import annotations

import torch
from torch import nn

from fsrbench_baselines.common import Hourglass, PreActBottleneck


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, bias: bool = True, pad_mode: str = "zeros") -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=bias, padding_mode=pad_mode if stride == 1 else "zeros")


def _conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1, pad_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, k, stride, False, pad_mode), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResBlockBN(nn.Module):
    """conv3x3–BN–ReLU–conv3x3–BN + identity (convs without bias)."""

    def __init__(self, ch: int, pad_mode: str = "zeros") -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(ch, ch, 3, 1, pad_mode), _conv(ch, ch, 3, 1, False, pad_mode),
                                  nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _out(c_in: int, c_out: int, tanh: bool, pad_mode: str) -> nn.Module:
    conv = _conv(c_in, c_out, 3, 1, True, pad_mode)
    return nn.Sequential(conv, nn.Tanh()) if tanh else conv


class FSRNet(nn.Module):
    """FSRNet generator. ``forward(x)`` → (y_c, heatmaps [B,K,64,64], parsing [B,P,64,64], ŷ)."""

    def __init__(self, keypoints: int = 68, parsing_classes: int = 11, hourglass_depth: int = 4,
                 output_tanh: bool = False, padding: str = "reflect") -> None:
        super().__init__()
        self.output_tanh = output_tanh  # tanh outputs work in [-1,1] (the re-implementations' data range)
        pm = {"reflect": "reflect", "zeros": "zeros", "zero": "zeros"}[padding]
        self.coarse = nn.Sequential(_conv_bn_relu(3, 64, 3, 1, pm), *[ResBlockBN(64, pm) for _ in range(3)],
                                    _out(64, 3, output_tanh, pm))
        self.encoder = nn.Sequential(_conv_bn_relu(3, 64, 3, 2), *[ResBlockBN(64, pm) for _ in range(12)],
                                     _out(64, 64, output_tanh, pm))
        self.prior = nn.Sequential(_conv_bn_relu(3, 64, 7, 2), PreActBottleneck(64, 128), PreActBottleneck(128, 128),
                                   PreActBottleneck(128, 128), Hourglass(hourglass_depth, 128, PreActBottleneck),
                                   Hourglass(hourglass_depth, 128, PreActBottleneck))
        self.heatmap_head = nn.Conv2d(128, keypoints, 1)
        self.parsing_head = nn.Conv2d(128, parsing_classes, 1)
        self.decoder = nn.Sequential(
            _conv_bn_relu(192, 64, 3, 1, pm),
            nn.ConvTranspose2d(64, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            *[ResBlockBN(64, pm) for _ in range(3)], _out(64, 3, output_tanh, pm))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        y_c = self.coarse(x)
        f = self.encoder(y_c)
        p = self.prior(y_c)
        out = self.decoder(torch.cat((f, p), 1))
        return y_c, self.heatmap_head(p), self.parsing_head(p), out
