"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2015) on RGB faces — METHODS.md §2.

Three convolutions on the bicubic-upsampled LR (128², [0,1]): 9x9 3→64 + ReLU, 5x5 (TPAMI "9-5-5",
default) or 1x1 (ECCV "9-1-5") 64→32 + ReLU, 5x5 32→3; zero "same" padding so the output stays 128²;
no global skip.  Gaussian init (std ``init_std``, default 1e-3 as in the paper), biases 0.  Trained with
MSE (recipe CHOICE: Adam 1e-4, batch 16, 150 k iterations — the original SGD schedule needs ~1e8 updates).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench_baselines.common import BaselineMethod

from .model import SRCNN


class SRCNNMethod(BaselineMethod):
    """SRCNN 9-5-5 (default) or 9-1-5 on the bicubic-upsampled RGB face."""

    name = "srcnn"
    scales = (4, 8)
    input = "upsampled"
    description = "SRCNN (Dong et al., 2014/2015): three convolutions on the bicubic upsampling, MSE"
    config_file = "configs/srcnn.yaml"
    train_priors = ()

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"srcnn supports scales {self.scales}, not {scale}")
        if str(config.get("color", "rgb")) != "rgb" or str(config.get("padding", "same")) != "same":
            raise ValueError("srcnn: only color=rgb and padding=same are implemented (128² RGB in and out)")
        std = config.get("init_std", 1e-3)
        return SRCNN(int(config.get("mapping_kernel", 5)), init_std=None if std is None else float(std))

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        loss = F.mse_loss(model(batch.upsampled), batch.hr)
        return loss, {"mse": loss.detach()}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch.upsampled)
