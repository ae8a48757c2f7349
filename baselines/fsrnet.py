"""FSRNet (Chen, Tai, Liu, Shen, Yang, CVPR 2018) — coarse SR, prior estimation, fine encoder/decoder.

METHODS.md §4 (the official repository has no network code; layer choices follow the paper as
re-implemented by cs-giung/FSRNet-pytorch and cydiachen/FSRNET_pytorch, differences are config keys):

* coarse SR net: conv3x3 3→64 (BN, ReLU), 3 residual blocks, conv3x3 64→3 → y_c (128²);
* fine SR encoder: conv3x3/2 3→64 (BN, ReLU), 12 residual blocks, conv3x3 64→64 → f (64×64²);
* prior estimation net: conv7x7/2 3→64 (BN, ReLU), 3 pre-activation bottlenecks (64→128, 128, 128),
  2 stacked hourglasses (128 ch, depth ``hourglass_depth``) → p (128×64²); 1x1 heads → K landmark
  heatmaps and P parsing maps (64²);
* fine SR decoder: concat(f, p) 192 → conv3x3 →64 (BN, ReLU), deconv 4x4/2 (BN, ReLU), 3 residual
  blocks, conv3x3 64→3 → ŷ (128²).

Convs followed by BatchNorm carry no bias (that is what gives 3,142,485 parameters for K=68, P=11).
Input: the bicubic-upsampled LR in [0,1]; outputs are linear in [0,1] (CHOICE ``output_tanh: false``).
Training priors: "landmarks68" (→ heatmaps, σ=1 px on 64²) and "parsing" (→ one-hot on 64²). None at test.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .common import (BaselineMethod, Hourglass, PreActBottleneck, init_normal, heatmaps_from_landmarks, parsing_onehot,
                     require_prior)


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


class FSRNetMethod(BaselineMethod):
    """FSRNet (K=68 landmark heatmaps + P=11 parsing maps as training priors)."""

    name = "fsrnet"
    scales = (4, 8)
    input = "upsampled"
    description = "FSRNet (Chen et al., CVPR 2018): coarse SR + prior estimation (heatmaps, parsing) + fine SR, MSE"
    config_file = "configs/fsrnet.yaml"
    train_priors = ("landmarks68", "parsing")

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"fsrnet supports scales {self.scales}, not {scale}")
        model = FSRNet(int(config.get("keypoints", 68)), int(config.get("parsing_classes", 11)),
                       int(config.get("hourglass_depth", 4)), bool(config.get("output_tanh", False)),
                       str(config.get("padding", "reflect")))
        std = config.get("init_std", 0.02)
        if std is not None:
            init_normal(model, float(std))
        return model

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        tanh = model.output_tanh
        x = batch.upsampled * 2 - 1 if tanh else batch.upsampled
        hr = batch.hr * 2 - 1 if tanh else batch.hr
        y_c, heat, pars, out = model(x)
        grid = heat.shape[-1]
        lm = require_prior(batch, "landmarks68", self.name).to(heat.device)
        gt_heat = heatmaps_from_landmarks(lm, grid, float(config.get("heatmap_sigma", 1.0)), int(hr.shape[-1]))
        parsing = require_prior(batch, "parsing", self.name).to(heat.device)
        gt_pars = parsing_onehot(parsing, pars.shape[1], grid)
        l_coarse = F.mse_loss(y_c, hr)
        l_fine = F.mse_loss(out, hr)
        l_heat = F.mse_loss(heat, gt_heat)
        l_pars = F.mse_loss(pars, gt_pars)
        lam = float(config.get("prior_weight", 1.0))
        loss = float(config.get("coarse_weight", 1.0)) * l_coarse + l_fine + lam * (l_heat + l_pars)
        return loss, {"coarse_mse": float(l_coarse.detach()), "fine_mse": float(l_fine.detach()),
                      "heatmap_mse": float(l_heat.detach()), "parsing_mse": float(l_pars.detach())}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        tanh = model.output_tanh
        x = batch.upsampled * 2 - 1 if tanh else batch.upsampled
        out = model(x)[3]
        return (out + 1) / 2 if tanh else out
