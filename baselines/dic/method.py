"""DIC — Deep Iterative Collaboration (Ma et al., CVPR 2020), METHODS.md §5.

A recurrent SRFBN-style SR branch and a feedback-hourglass landmark estimator that help each other over
T steps (Maclory/Deep-Iterative-Collaboration, ``train_DIC_CelebA.json``: nf 48, T 4, G 6, hourglass 256
features, 68 keypoints, 7 fusion blocks):

* LR features: ×8: conv3x3 3→4nf + PReLU, PixelShuffle(2) (16² → 32²); ×4 [CHOICE, the code is ×8-only]:
  conv3x3 3→4nf + PReLU, conv1x1 4nf→nf + PReLU (SRFBN's extractor, features at 32²);
* step 0: conv1x1 + SRFBN projection core (G groups, ×``scale/2`` (×8) or ×4 (×4) projections);
* steps ≥ 1: concat(LR features, previous core output) → conv1x1 → attentive fusion with 5 component
  maps merged from the previous step's 68 heatmaps → projection core (weights shared by steps 1..T−1);
* reconstruction: deconv 8x8/4 + PReLU, conv3x3 nf→3, plus the bilinear upsampling of the LR;
* landmark estimator: :class:`~fsrbench_baselines.common.FeedbackHourglass` run on every step's SR.

Data: [0,1] images minus the mean (0.509, 0.424, 0.378) (the wrapper adds it back).  Loss:
Σ_t L1(SR_t, HR) + 0.1·Σ_t MSE(heatmap_t, GT) with GT = Gaussians (σ 1) of "landmarks68"/4 on 32².
The official recipe starts from a pre-trained, frozen-for-2k-iterations hourglass; offline we pre-train
it inside the same run for ``hg_pretrain_iterations`` (heatmap MSE on HR images only), then freeze it for
``hg_freeze_iterations`` (a step counter buffer in the model keeps this exact on resume).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.train import unwrap
from fsrbench.weights import load_partial
from fsrbench_baselines.common import BaselineMethod, heatmaps_from_landmarks, require_prior

from .model import DIC, DIC_MEAN, host_step, init_kaiming, init_recurrent_from_first_step


def _mean(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(DIC_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


class DICMethod(BaselineMethod):
    """DIC (×8 as released; ×4 with the SRFBN-style adaptation of METHODS.md §5.3)."""

    name = "dic"
    scales = (4, 8)
    input = "lr"
    description = "DIC (Ma et al., CVPR 2020): iterative SR + feedback-hourglass landmarks with attentive fusion"
    config_file = "configs/dic.yaml"
    train_priors = ("landmarks68",)

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"dic supports scales {self.scales}, not {scale}")
        if str(config.get("x4_adaptation", "srfbn")) != "srfbn":
            raise ValueError("dic: x4_adaptation must be 'srfbn' (the only x4 variant implemented)")
        model = DIC(scale, int(config.get("features", 48)), int(config.get("num_steps", 4)),
                    int(config.get("groups", 6)), int(config.get("hg_features", 256)),
                    int(config.get("keypoints", 68)), int(config.get("fusion_blocks", 7)),
                    bool(config.get("detach_attention", False)), int(config.get("hg_depth", 4)))
        for part, key, default in (("sr", "init", "kaiming"), ("hourglass", "hg_init", "default")):
            kind = str(config.get(key, default))
            if kind not in ("kaiming", "default"):
                raise ValueError(f"dic: {key} must be 'kaiming' or 'default', not {kind!r}")
            if kind == "kaiming":
                for name, child in model.named_children():
                    if (name == "hourglass") == (part == "hourglass"):
                        init_kaiming(child, float(config.get("init_scale", 1.0)))
        return model

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        core = unwrap(model)  # DDP-wrapped or plain
        if config.get("init_from") and host_step(core) == 0:
            # a later stage starts from an earlier stage's weights (train_step included, so the phase
            # counters continue; loading resets the host mirror of train_step); a resumed run has
            # train_step > 0 and never re-reads the file
            recurrent_init = str(config.get("recurrent_init") or "none")
            if recurrent_init not in ("none", "first_step"):
                raise ValueError(f"dic: recurrent_init must be 'none' or 'first_step', not {recurrent_init!r}")
            load_partial(core, str(config["init_from"]))
            if recurrent_init == "first_step":
                init_recurrent_from_first_step(core)
        step = host_step(core)
        core.train_step += 1
        core.host_train_step = step + 1
        pre = int(config.get("hg_pretrain_iterations", 0))
        freeze = int(config.get("hg_freeze_iterations", 0))
        lm = require_prior(batch, "landmarks68", self.name).to(batch.hr.device)
        hr_size = int(batch.hr.shape[-1])  # heatmaps live on the HR/4 grid (32² for 128² faces)
        gt = heatmaps_from_landmarks(lm, hr_size // 4, float(config.get("heatmap_sigma", 1.0)), hr_size)
        hr = batch.hr - _mean(batch.hr)
        w_hm = float(config.get("heatmap_weight", 0.1))
        if step < pre:  # phase 1: landmark estimator alone on HR images
            loss = F.mse_loss(model(hr, mode="landmarks"), gt)
            return loss, {"phase": 0.0, "hg_mse": loss.detach()}
        frozen = step < pre + freeze
        for p in core.hourglass.parameters():
            p.requires_grad_(not frozen)
        srs, heats = model(batch.lr - _mean(batch.lr))
        l1 = sum(F.l1_loss(sr, hr) for sr in srs)
        mse = sum(F.mse_loss(h, gt) for h in heats)
        loss = l1 + w_hm * mse
        logs = {"phase": 1.0 if frozen else 2.0, "l1": l1.detach(), "heatmap_mse": mse.detach(),
                "l1_last": F.l1_loss(srs[-1], hr).detach()}
        return loss, logs

    def ddp_find_unused_parameters(self, model: nn.Module, config: Mapping[str, Any]) -> bool:
        """Engine hook: under DDP, parameters without a gradient exist only in the hourglass pre-training (the
        SR branch is unused) and the frozen-hourglass phase; afterwards DDP runs without the per-step search."""
        pre = int(config.get("hg_pretrain_iterations", 0))
        freeze = int(config.get("hg_freeze_iterations", 0))
        return host_step(unwrap(model)) < pre + freeze

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        srs, _ = model(batch.lr - _mean(batch.lr))
        return srs[-1] + _mean(batch.lr)
