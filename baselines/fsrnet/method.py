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

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.train import unwrap
from fsrbench.weights import load_partial, sha256_file
from fsrbench_baselines.common import (BaselineMethod, heatmaps_from_landmarks, init_normal, parsing_onehot,
                                      require_prior)

from .model import FSRNet


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
        path = config.get("init_from")
        # A warm start (e.g. x4 from the x8 weights: the network is the same at both scales, its input is the
        # bicubic-upsampled LR). Loaded only when the file exists: evaluation rebuilds the model from the
        # training config (where the path is a reference, not a file) and then loads the trained weights;
        # training_loss refuses to train when the file was missing.
        if path and Path(str(path)).is_file():
            rep = load_partial(model, str(path))
            if rep["missing"]:
                raise ValueError(f"fsrnet: init_from {path} lacks {len(rep['missing'])} tensors of this model "
                                 f"(e.g. {rep['missing'][0]}); it must be an FSRNet checkpoint of the same config")
            model.init_report = {"init_from": str(path), "sha256": sha256_file(path),  # type: ignore[assignment]
                                 "loaded_tensors": len(rep["loaded"])}
        return model

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        if config.get("init_from") and not getattr(unwrap(model), "init_report", None):
            raise FileNotFoundError(f"fsrnet: init_from {config['init_from']}: no such file (the weights to start "
                                    "from); fix the path or --set init_from=null to train from scratch")
        tanh = unwrap(model).output_tanh
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
        return loss, {"coarse_mse": l_coarse.detach(), "fine_mse": l_fine.detach(),
                      "heatmap_mse": l_heat.detach(), "parsing_mse": l_pars.detach()}

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        tanh = unwrap(model).output_tanh
        x = batch.upsampled * 2 - 1 if tanh else batch.upsampled
        out = model(x)[3]
        return (out + 1) / 2 if tanh else out
