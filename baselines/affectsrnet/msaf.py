"""MSAF — Multimodal Split Attention Fusion (Su et al. 2020), as AffectSRNet uses it (METHODS.md §7.4).

Inputs: a list of feature maps of the same H×W (here backbone features, 64 ch, and the graph map, 16 ch).
Each modality is split into blocks of ``block_channel`` channels (zero-padded to a multiple), the blocks of
a modality are summed and spatially averaged, the per-modality descriptors are summed, a joint layer
(Linear c→c/r + BatchNorm1d + ReLU; a batch of one image uses the running statistics, see
:class:`BatchNorm1dAnyBatch`) squeezes them, one Linear per block gives its channel attention, and
a softmax across all blocks (per channel index) normalises the attentions. Each block is multiplied by its
attention; during training whole blocks are dropped with probability ``block_dropout`` (rescaled by
1/(1−p)). :class:`MSAFFusion` then concatenates the re-weighted modalities and projects them back to the
backbone width with a 1×1 conv.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm1dAnyBatch(nn.BatchNorm1d):
    """BatchNorm1d that also trains on a batch of one image [CHOICE]: a single sample has no batch statistics
    (PyTorch raises "Expected more than 1 value per channel"), so it is normalised with the running
    statistics, as in evaluation, and they are not updated.  Larger batches: exactly BatchNorm1d.  The
    state-dict keys are BatchNorm1d's, and under DDP the engine's SyncBatchNorm (global batch) replaces it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1 and x.dim() == 2 and self.running_mean is not None:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class MSAFBlock(nn.Module):
    """Split / join / highlight over ``len(in_channels)`` modalities; returns the re-weighted inputs."""

    def __init__(self, in_channels: Sequence[int], block_channel: int = 16, reduction: int = 4,
                 block_dropout: float = 0.2, lowest_atten: float = 0.0) -> None:
        super().__init__()
        if block_channel % reduction:
            raise ValueError(f"block_channel {block_channel} must be divisible by reduction {reduction}")
        if not 0.0 <= block_dropout < 1.0:
            raise ValueError(f"block_dropout must be in [0, 1), got {block_dropout}")
        self.in_channels = [int(c) for c in in_channels]
        self.block_channel = int(block_channel)
        self.num_blocks = [math.ceil(c / self.block_channel) for c in self.in_channels]
        self.block_dropout = float(block_dropout)
        self.lowest_atten = float(lowest_atten)
        reduced = self.block_channel // reduction
        self.joint = nn.Sequential(nn.Linear(self.block_channel, reduced), BatchNorm1dAnyBatch(reduced),
                                   nn.ReLU(inplace=True))
        self.block_att = nn.ModuleList(nn.Linear(reduced, self.block_channel) for _ in range(sum(self.num_blocks)))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(xs) != len(self.in_channels):
            raise ValueError(f"MSAF expects {len(self.in_channels)} modalities, got {len(xs)}")
        blocks = []
        for x, c, nb in zip(xs, self.in_channels, self.num_blocks):
            if x.shape[1] != c:
                raise ValueError(f"MSAF modality has {x.shape[1]} channels, expected {c}")
            pad = nb * self.block_channel - c
            if pad:
                x = F.pad(x, (0, 0, 0, 0, 0, pad))  # zero channels at the end
            blocks.append(x.reshape(x.shape[0], nb, self.block_channel, *x.shape[2:]))
        # descriptor per modality: sum of its blocks, spatial mean; joint = sum over modalities
        g = sum(b.sum(1).flatten(2).mean(-1) for b in blocks)  # [B, c]
        z = self.joint(g)
        att = torch.softmax(torch.stack([lin(z) for lin in self.block_att], 1), dim=1)  # [B, n_blocks, c]
        if self.lowest_atten:
            att = self.lowest_atten + att * (1.0 - self.lowest_atten)
        if self.training and self.block_dropout > 0:
            keep = torch.rand(att.shape[0], att.shape[1], 1, device=att.device) >= self.block_dropout
            att = att * keep.to(att.dtype) / (1.0 - self.block_dropout)
        out, start = [], 0
        for b, c, nb in zip(blocks, self.in_channels, self.num_blocks):
            a = att[:, start:start + nb].reshape(att.shape[0], nb, self.block_channel, *([1] * (b.dim() - 3)))
            start += nb
            y = (b * a).reshape(b.shape[0], nb * self.block_channel, *b.shape[3:])
            out.append(y[:, :c])
        return out


class MSAFFusion(nn.Module):
    """MSAF over [backbone (``feat_channels``), graph map (``graph_channels``)] + 1×1 merge back to the backbone."""

    def __init__(self, feat_channels: int = 64, graph_channels: int = 16, block_channel: int = 16,
                 reduction: int = 4, block_dropout: float = 0.2, lowest_atten: float = 0.0) -> None:
        super().__init__()
        self.msaf = MSAFBlock([feat_channels, graph_channels], block_channel, reduction, block_dropout,
                              lowest_atten)
        self.merge = nn.Conv2d(feat_channels + graph_channels, feat_channels, 1)

    def forward(self, feat: torch.Tensor, graph_map: torch.Tensor) -> torch.Tensor:
        a, b = self.msaf([feat, graph_map])
        return self.merge(torch.cat([a, b], 1))
