"""AffectSRNet's loss terms (METHODS.md §7.6), built on the shared ``fsrbench.train.losses``.

* L_pix: L1 (``fsrbench.train.losses.l1``);
* L_hist: ``colour_histogram_loss`` — soft per-image/per-channel RGB histograms, K Gaussian bins on
  [0, 1] (centres (k+½)/K, σ = 1/K), mean over batch×channels of Σ_k (h_SR − h_HR)²;
* style: ``StyleLoss`` — Σ_j ‖G_j(SR) − G_j(HR)‖²_F, G = φφᵀ/(C·H·W), VGG-16 relu1_2/2_2/3_3/4_3 from the
  offline carrier (``fsrbench.analysis.carriers.vgg16_features``), HR side without gradient;
* L_L2: :func:`masked_node_l2` — ``node_embedding_l2`` (Σ_v ‖z_v − z_ref_v‖², batch mean, stop-gradient on
  the reference graph) restricted to the samples whose landmarks were both found (no mean-shape fallback).

:func:`style_loss` caches one frozen feature network per layer set (never part of the model's state).
"""
from __future__ import annotations

from typing import Sequence

import torch

from fsrbench.train.losses import StyleLoss, colour_histogram_loss, l1, node_embedding_l2

__all__ = ["l1", "colour_histogram_loss", "style_loss", "masked_node_l2"]

_STYLE: dict[tuple[tuple[str, ...], str], StyleLoss] = {}


def style_loss(sr: torch.Tensor, hr: torch.Tensor,
               layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
               reduction: str = "mean") -> torch.Tensor:
    """The Gram-matrix style term on the named VGG-16 layers (feature network cached per layer set)."""
    key = (tuple(layers), reduction)
    if key not in _STYLE:
        _STYLE[key] = StyleLoss(key[0], reduction=reduction)
    return _STYLE[key](sr, hr)


def masked_node_l2(z: torch.Tensor, z_ref: torch.Tensor, mask: torch.Tensor | None = None,
                   reduction: str = "sum", detach_ref: bool = True) -> torch.Tensor:
    """Node-embedding L2 over the samples where ``mask`` is True (0 — still connected to ``z`` — if none).

    ``reduction="sum"``: Σ over nodes and features (the paper's Σ_v ‖·‖²); ``"mean"``: divided by V·D.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"node_reduction must be 'sum' or 'mean', not {reduction!r}")
    if mask is not None:
        if not bool(mask.any()):
            return z.sum() * 0.0
        z, z_ref = z[mask], z_ref[mask]
    out = node_embedding_l2(z, z_ref, detach_ref=detach_ref)
    return out / (z.shape[1] * z.shape[2]) if reduction == "mean" else out
