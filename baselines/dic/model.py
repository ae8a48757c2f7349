"""The DIC generator (Ma et al., CVPR 2020) and its initialisation; the method is in :mod:`.method`."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench_baselines.common import (FeatureHeatmapFusion, FeedbackHourglass, SRFBNProjectionCore, conv_prelu,
                                      deconv_prelu, merge_heatmaps_5)


DIC_MEAN = (0.509, 0.424, 0.378)


class DIC(nn.Module):
    """DIC generator. ``forward(x)`` → (list of T SR images, list of T heatmaps [B,K,32,32]).

    ``x`` is the mean-subtracted LR (16² for ×8, 32² for ×4); outputs are mean-subtracted 128² images.
    ``forward(img, mode="landmarks")`` runs only the hourglass on a 128² image (pre-training phase).
    """

    def __init__(self, scale: int = 8, features: int = 48, steps: int = 4, groups: int = 6,
                 hg_features: int = 256, keypoints: int = 68, fusion_blocks: int = 7,
                 detach_attention: bool = False, hg_depth: int = 4) -> None:
        super().__init__()
        if scale not in (4, 8):
            raise ValueError(f"DIC is defined for x4 and x8, not x{scale}")
        if keypoints != 68:
            raise ValueError("the attention maps are defined for 68 keypoints")
        nf = features
        self.scale, self.steps, self.detach_attention = scale, steps, detach_attention
        if scale == 8:  # official: features at 2x the LR size, then x4 (k8 s4 p2) reconstruction
            self.feat_in = nn.Sequential(conv_prelu(3, 4 * nf, 3), nn.PixelShuffle(2))
            core_factor = 8  # official code passes the scale (12x12/8 projections, 256² internal maps)
        else:  # x4 CHOICE: SRFBN's extractor; projections x4 (internal maps 128²)
            self.feat_in = nn.Sequential(conv_prelu(3, 4 * nf, 3), conv_prelu(4 * nf, nf, 1))
            core_factor = 4
        self.first_in = conv_prelu(nf, nf, 1)
        self.first_core = SRFBNProjectionCore(nf, groups, core_factor)
        self.compress_in = conv_prelu(2 * nf, nf, 1)
        self.fusion = FeatureHeatmapFusion(nf, 5, fusion_blocks)
        self.core = SRFBNProjectionCore(nf, groups, core_factor)
        self.reconstruct = nn.Sequential(deconv_prelu(nf, nf, 8, 4, 2), nn.Conv2d(nf, 3, 3, padding=1))
        self.hourglass = FeedbackHourglass(hg_features, keypoints, hg_depth)
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self.host_train_step: int | None = None  # train_step mirrored on the host (see host_step)
        self.register_load_state_dict_post_hook(_forget_host_step)

    def forward(self, x: torch.Tensor, mode: str = "sr") -> Any:
        if mode == "landmarks":
            return self.hourglass(x)[0]
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        feat = self.feat_in(x)
        srs, heats = [], []
        hidden = prev = heat = None
        for t in range(self.steps):
            if t == 0:
                prev = self.first_core(self.first_in(feat))
            else:
                fused = self.fusion(self.compress_in(torch.cat((feat, prev), 1)),
                                    merge_heatmaps_5(heat, self.detach_attention))
                prev = self.core(fused)
            sr = base + self.reconstruct(prev)
            heat, hidden = self.hourglass(sr, hidden)
            srs.append(sr)
            heats.append(heat)
        return srs, heats


def init_kaiming(model: nn.Module, scale: float = 1.0) -> None:
    """Kaiming-normal (fan-in) conv weights × ``scale``, zero biases (DIC's 'kaiming' init); PReLUs keep 0.2."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            with torch.no_grad():
                m.weight.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def init_recurrent_from_first_step(model: DIC) -> None:
    """[CHOICE] ``recurrent_init: first_step`` — start the recurrent path (steps >= 1) as a copy of step 0.

    After a T=1 warm-up (``cpu-reference-init``) the shared core, the compression of (LR features, previous
    output) and the attentive fusion are untrained; run at T=4 they would wreck the output. This makes every
    step >= 1 reproduce step 0 exactly (when ``first_in``'s PReLU slope is the fusion's 0.2): ``core`` =
    ``first_core``; ``compress_in`` = ``first_in``'s convolution on the LR-feature half (zero on the previous
    output) with a linear PReLU (slope 1); the fusion's 1x1 expansion copies its input into each of the 5
    groups (its LeakyReLU(0.2) then plays ``first_in``'s activation), its residual blocks start at identity
    (last conv zero), and the softmax-weighted sum of identical copies returns the copy. Training then moves
    every part away from this start.
    """
    model.core.load_state_dict(model.first_core.state_dict())
    src, conv, act = model.first_in[0], model.compress_in[0], model.compress_in[1]
    nf = src.weight.shape[0]
    conv.weight.zero_()
    conv.weight[:, :nf] = src.weight
    conv.bias.copy_(src.bias)
    act.weight.fill_(1.0)
    expand = model.fusion.conv_in[0]
    expand.weight.zero_()
    expand.bias.zero_()
    eye = torch.eye(nf, dtype=expand.weight.dtype).view(nf, nf, 1, 1)
    for n in range(model.fusion.n_maps):
        expand.weight[n * nf:(n + 1) * nf] = eye
    for block in model.fusion.res:
        block.body[-1].weight.zero_()
        block.body[-1].bias.zero_()


def _forget_host_step(module: nn.Module, incompatible: Any) -> None:
    module.host_train_step = None  # new weights, new counter: read the buffer again


def host_step(model: DIC) -> int:
    """DIC's step counter (the ``train_step`` buffer, saved with checkpoints so phases survive a resume),
    read from the device once after the weights are set and then mirrored on the host — no per-step sync."""
    if model.host_train_step is None:
        model.host_train_step = int(model.train_step)
    return model.host_train_step
