"""UFVNet weight regressor (METHODS.md §10.1) and the ground-truth anchor weights of Eq. 4 (§10.2).

* :class:`WeightRegressor`: torchvision AlexNet (hidden FC width ``fc_width``, AlexNet's 4096 by default) (random init; no downloads) adapted to a 128×128 input by
  changing the first max-pool to kernel 3 / stride 1 ([CHOICE]: conv1 11×11/4 → 31², pool → 29², pool →
  14², pool → 6², so the 9216-wide classifier is unchanged), plus the added FC 1000 → n_anchors.
  ``forward`` returns logits; the weights are their softmax ([CHOICE]: "non-negative, sum to one").
* :func:`gt_weights`: w_i = (1 − d_i / Σ_j d_j) / (n − 1), d_i = |r − a_i| (Eq. 4, where n = 3 gives the
  paper's factor ½; n = 1 gives w = 1).  Input: rates r as a tensor [B] (LR side / HR side).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class WeightRegressor(nn.Module):
    """AlexNet classifier → 1000 → ``n_out`` logits, for [B,3,128,128] inputs (any normalisation)."""

    def __init__(self, n_out: int = 3, first_pool_stride: int = 1, dropout: float = 0.5, fc_width: int = 4096) -> None:
        super().__init__()
        import torchvision

        self.net = torchvision.models.alexnet(weights=None, dropout=dropout)
        self.net.features[2] = nn.MaxPool2d(kernel_size=3, stride=first_pool_stride)
        if fc_width != 4096:  # [CHOICE] narrower hidden FC layers (AlexNet: 4096); same layers and names
            cls = self.net.classifier
            cls[1], cls[4], cls[6] = nn.Linear(9216, fc_width), nn.Linear(fc_width, fc_width), nn.Linear(fc_width, 1000)
        self.fc = nn.Linear(1000, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x))


def gt_weights(rates: torch.Tensor | Sequence[float], anchors: Sequence[float]) -> torch.Tensor:
    """Eq. 4 ground-truth weights [B, n] for down-sampling rates [B] and anchor rates (n of them)."""
    r = torch.as_tensor(rates, dtype=torch.float32).reshape(-1, 1)
    a = torch.as_tensor(list(anchors), dtype=torch.float32, device=r.device).reshape(1, -1)
    n = a.shape[1]
    if n == 1:
        return torch.ones(r.shape[0], 1, device=r.device)
    d = (r - a).abs()
    total = d.sum(1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("anchors must be distinct (all distances are zero)")
    return (1.0 - d / total) / (n - 1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−Σ_i t_i log softmax(logits)_i, mean over the batch (the paper's L_CE(W_GT, W))."""
    return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()
