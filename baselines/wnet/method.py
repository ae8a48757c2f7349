"""W-Net as an fsrbench TrainableMethod (METHODS.md §9): model, parsing targets, key-region loss.

Input: the protocol's bicubic-upsampled LR (``input = "upsampled"``, 128²). No test-time prior.
Training prior: ``parsing`` — the fsrbench label map uint8 [B,128,128] (0 bg, 1 skin, 2 l_brow, 3 r_brow,
4 l_eye, 5 r_eye, 6 nose, 7 u_lip, 8 inner_mouth, 9 l_lip). From it:

* parsing target = binary skin mask (label 1), bicubic-downsampled by the scale and bicubic-upsampled
  back to 128² with the same PIL uint8 pipeline as the images (``fsrbench.imageio.make_lr`` /
  ``upsample`` when available, else PIL directly), replicated to 3 channels (§9.4);
* region masks for L_key: eyes {4,5}, eyebrows {2,3}, nose {6}, mouth {7,8,9} (config ``regions``).

Loss (§9.5): λ_pixel·MSE(SR, HR) + λ_par·MSE(P, P_target) + λ_key·Σ_regions [mean((M⊙(SR−HR))²) +
mean((φ(M⊙SR) − φ(M⊙HR))²)], φ = VGG-16 relu2_2 from the offline carrier (the paper's VGG-19 has no
offline weights; the first two blocks have the same architecture — see docs/methods/wnet.md).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from fsrbench.train.losses import PerceptualLoss, mse, parsing_mse, region_mse
from fsrbench_baselines.common import BaselineMethod, require_prior

from .model import build_wnet

#: the TrainBatch.priors entry :meth:`WNetMethod.prepare_sample` fills in the data workers
PARSING_TARGET = "wnet_parsing_target"
DEFAULT_REGIONS = {"eyes": [4, 5], "eyebrows": [2, 3], "nose": [6], "mouth": [7, 8, 9]}


def _down_up_u8(mask_u8: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H,W] → PIL-bicubic down by ``scale`` and back up (the image degradation pipeline)."""
    h, w = mask_u8.shape
    rgb = np.repeat(mask_u8[..., None], 3, axis=2)
    try:
        from fsrbench.imageio import make_lr, upsample

        out = upsample(make_lr(rgb, scale), h)
    except ImportError:
        from PIL import Image

        lr = Image.fromarray(rgb).resize((w // scale, h // scale), Image.BICUBIC)
        out = np.asarray(lr.resize((w, h), Image.BICUBIC))
    return np.asarray(out)[..., 0]


def parsing_target(labels: Any, scale: int, skin_label: int = 1, channels: int = 3,
                   device: Any = "cpu") -> torch.Tensor:
    """Label maps [B,H,W] → binary skin mask, bicubic down-up by ``scale``, in [0,1], [B,channels,H,W]."""
    lab = torch.as_tensor(labels).detach().cpu().numpy()
    if lab.ndim == 4:
        lab = lab[:, 0]
    outs = [_down_up_u8(np.where(m == skin_label, 255, 0).astype(np.uint8), scale) for m in lab]
    t = torch.from_numpy(np.stack(outs)).float().div_(255.0).unsqueeze(1)
    return t.expand(-1, channels, -1, -1).contiguous().to(device)


def region_masks(labels: Any, regions: Mapping[str, Any], device: Any = "cpu") -> torch.Tensor:
    """Label maps [B,H,W] → float masks [R,B,1,H,W], one per region (label sets in ``regions``)."""
    lab = torch.as_tensor(labels, device=device).long()
    if lab.dim() == 4:
        lab = lab[:, 0]
    masks = []
    for labels_of_region in regions.values():  # comparisons with Python ints: no host-to-device copy per step
        m = torch.zeros_like(lab, dtype=torch.bool)
        for v in labels_of_region:
            m |= lab == int(v)
        masks.append(m.float().unsqueeze(1))
    return torch.stack(masks)


_PERCEPTUAL: dict[str, PerceptualLoss] = {}


def key_region_loss(sr: torch.Tensor, hr: torch.Tensor, masks: torch.Tensor, layer: str = "relu2_2",
                    perceptual: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_r mean((M_r⊙(SR−HR))²), Σ_r mean((φ(M_r⊙SR) − φ(M_r⊙HR))²)) over the R regions of ``masks``
    [R,B,1,H,W]; all regions go through the VGG in one batch (every region term has the same size, so
    Σ_r mean_r = R · mean over all)."""
    r = masks.shape[0]
    k_mse = r * region_mse(sr.unsqueeze(0), hr.unsqueeze(0), masks)
    if not perceptual:
        return k_mse, sr.new_zeros(())
    if layer not in _PERCEPTUAL:
        _PERCEPTUAL[layer] = PerceptualLoss((layer,))
    m_sr = (masks * sr.unsqueeze(0)).flatten(0, 1)
    m_hr = (masks * hr.unsqueeze(0)).flatten(0, 1)
    return k_mse, r * _PERCEPTUAL[layer](m_sr, m_hr)


class WNetMethod(BaselineMethod):
    """W-Net (Liu et al. 2024): Parsing Block, seven LPF fusions up to 1024², SCAB encoder–decoder."""

    name = "wnet"
    scales = (4, 8)
    input = "upsampled"
    priors = ()
    train_priors = ("parsing",)
    config_file = "configs/wnet.yaml"
    description = ("W-Net (Liu et al. 2024): Parsing Block + W-shaped LPF fusions + SCAB encoder-decoder; "
                   "MSE + parsing MSE + 0.5 key-region (MSE + VGG)")

    def _model_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = dict(config)
        cfg.update(self.options)
        return cfg

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"{self.name} supports scales {self.scales}, not {scale}")
        return build_wnet(self._model_config(config))

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        sr, _ = model(batch.upsampled)
        return sr

    def prepare_sample(self, sample: Mapping[str, Any], rng: Any, config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Engine hook, run in the data workers: this sample's parsing target before replication to channels
        (uint8 [H,W]; the same PIL down-up as :func:`parsing_target`), so the training step does no CPU work."""
        labels = sample["priors"].get("parsing")
        if labels is None:
            return {}
        skin = np.where(np.asarray(labels) == int(self._model_config(config).get("skin_label", 1)), 255, 0)
        return {PARSING_TARGET: _down_up_u8(skin.astype(np.uint8), int(sample["scale"]))}

    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self._model_config(config)
        labels = require_prior(batch, "parsing", self.name)
        hr = batch.hr
        sr, parsing = model(batch.upsampled)
        if PARSING_TARGET in batch.priors:  # prepared by the data workers
            target = batch.priors[PARSING_TARGET].to(hr.device).float().div_(255.0).unsqueeze(1)
            target = target.expand(-1, parsing.shape[1], -1, -1).contiguous()
        else:
            target = parsing_target(labels, int(batch.scale), int(cfg.get("skin_label", 1)), parsing.shape[1],
                                    hr.device)
        log: dict[str, float] = {}
        l_mse = mse(sr, hr)
        l_par = parsing_mse(parsing, target)
        w_pix, w_par, w_key = (float(cfg.get(k, d)) for k, d in
                               (("pixel_weight", 1.0), ("parsing_weight", 1.0), ("key_weight", 0.5)))
        loss = w_pix * l_mse + w_par * l_par
        log["mse"], log["parsing"] = l_mse.detach(), l_par.detach()
        if w_key:
            masks = region_masks(labels, cfg.get("regions") or DEFAULT_REGIONS, hr.device)
            w_per = float(cfg.get("perceptual_weight", 1.0))
            k_mse, k_per = key_region_loss(sr, hr, masks, str(cfg.get("perceptual_layer", "relu2_2")), bool(w_per))
            loss = loss + w_key * (k_mse + w_per * k_per)
            log["key_mse"], log["key_perceptual"] = k_mse.detach(), k_per.detach()
        log["total"] = loss.detach()
        return loss, log
