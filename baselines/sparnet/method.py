"""SPARNet (Chen et al., TIP 2020) and SPARNet-Light-Attn3D — face SR with Face Attention Units.

Layer-for-layer the released configuration of chaofengc/Face-SPARNet (METHODS.md §6): an encoder of
three down-sampling FAUs (128² → 16², 32 → 128 channels), ``res_depth`` FAUs at 16², three up-sampling
FAUs, reflection-padded 3x3 convs with BatchNorm + LeakyReLU(0.2), and a spatial-attention hourglass in
every FAU ("2d": one map per FAU, "3d": one map per channel).

Input: the bicubic-upsampled LR (128², [0,1]); the wrapper maps it to [-1,1] and the output back to
[0,1]. The network is in :mod:`.model`, whose names other methods use (UFVNet imports them): ``ConvLayer``,
``AttentionHourglass``, ``FAU``, ``SPARNet(res_depth, attn="2d"|"3d")``; the methods are ``SPARNetMethod``
and ``SPARNetLightMethod``.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench_baselines.common import BaselineMethod, init_normal

from .model import SPARNet


class SPARNetMethod(BaselineMethod):
    """SPARNet (released configuration: 10 body FAUs, 2-D attention; 10,518,867 parameters)."""

    name = "sparnet"
    scales = (4, 8)
    input = "upsampled"
    description = "SPARNet (Chen et al., TIP 2020): FAU encoder-decoder with spatial attention, L1"
    config_file = "configs/sparnet.yaml"
    train_priors = ()

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"{self.name} supports scales {self.scales}, not {scale}")
        model = SPARNet(res_depth=int(config.get("res_depth", 10)), attn=str(config.get("attention", "2d")))
        init_normal(model, float(config.get("init_std", 0.02)))
        return model

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        sr = model(batch.upsampled * 2 - 1)
        loss = float(config.get("pix_weight", 1.0)) * F.l1_loss(sr, batch.hr * 2 - 1)
        return loss, {"l1": loss.detach()}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return (model(batch.upsampled * 2 - 1) + 1) / 2


class SPARNetLightMethod(SPARNetMethod):
    """SPARNet-Light-Attn3D (1 body FAU, per-channel attention; 5,242,211 parameters)."""

    name = "sparnet-light"
    description = "SPARNet-Light-Attn3D (released light model): 1 body FAU, 3-D attention, L1"
    config_file = "configs/sparnet-light.yaml"
