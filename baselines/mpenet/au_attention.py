"""AU attention maps for MPENet (METHODS.md §8.3): JAA-Net's rules re-indexed to the 68-point scheme.

Expects landmarks as a float tensor [B, 68, 2] (x, y) in the coordinates of the M×M map grid (MPENet:
the arg-max positions of the 32×32 step-1 heatmaps), and returns one map per requested AU,
[B, n_au, M, M], values in [0, 1].

JAA-Net (ZhiwenShao/PyTorch-JAANet, ``AlignNet.forward`` / ``generate_map``) places two centres per AU
relative to its 49 inner landmarks; the 49-index i maps to the 68-index i+17 for i <= 42 and
43..48 -> 61, 62, 63, 65, 66, 67.  ``ruler`` = |x39 - x42| (inner eye-corner distance, 68 scheme).
Around each (rounded) centre, inside the square |p - c|_inf <= round((M-1)/2 * ratio),
w(p) = 1 - fill * ||p - c||_1 / (M * ratio); the two centres are combined with an element-wise max
(cells outside both squares are 0).  Defaults: ratio 0.14, fill 0.56 (JAA-Net).

AU05 and AU20 have no JAA-Net rule (neither is in BP4D or DISFA) but are produced by fsrbench's
geometric AU estimator; their rules here are a [CHOICE] (AU05: the upper-lid points like AU07, AU20:
the mouth corners like AU12), listed in docs/methods/mpenet.md.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: AU number -> (68-point index of centre 1, index of centre 2, vertical offset in units of ``ruler``)
#: (image coordinates, y downwards; negative = above the landmark).
AU_RULES_68: dict[int, tuple[int, int, float]] = {
    1: (21, 22, -1 / 2),   # inner brow raiser
    2: (18, 25, -1 / 3),   # outer brow raiser
    4: (19, 24, +1 / 3),   # brow lowerer
    6: (41, 46, +1.0),     # cheek raiser
    7: (38, 43, 0.0),      # lid tightener
    9: (32, 34, -1 / 2),   # nose wrinkler
    10: (61, 63, 0.0),     # upper lip raiser
    12: (48, 54, 0.0),     # lip corner puller
    14: (48, 54, 0.0),     # dimpler (BP4D: same map as AU12)
    15: (48, 54, 0.0),     # lip corner depressor (same map as AU12)
    17: (56, 58, +1 / 2),  # chin raiser
    23: (51, 57, 0.0),     # lip tightener
    24: (51, 57, 0.0),     # lip pressor (same map as AU23)
    25: (51, 57, 0.0),     # lips part (DISFA)
    26: (56, 58, +1 / 2),  # jaw drop (DISFA)
    # [CHOICE] no JAA-Net rule; used by fsrbench's geometric AU estimator
    5: (38, 43, 0.0),      # upper lid raiser: the upper-lid points (like AU07)
    20: (48, 54, 0.0),     # lip stretcher: the mouth corners (like AU12)
}

#: AU sets of the two datasets of the MPENet paper.
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)

#: 49-point (JAA-Net) index -> 68-point index.
def jaa49_to_68(i: int) -> int:
    if not 0 <= i <= 48:
        raise ValueError(f"49-point index out of range: {i}")
    return i + 17 if i <= 42 else (61, 62, 63, 65, 66, 67)[i - 43]


def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Integer arg-max position (x, y) of every map, [B,K,H,W] -> float [B,K,2] in grid units."""
    b, k, h, w = heatmaps.shape
    idx = heatmaps.detach().reshape(b, k, h * w).argmax(-1)
    return torch.stack(((idx % w).float(), torch.div(idx, w, rounding_mode="floor").float()), -1)


def au_attention_maps(landmarks: torch.Tensor, aus: Sequence[int], size: int = 32,
                      spatial_ratio: float = 0.14, fill_coeff: float = 0.56) -> torch.Tensor:
    """JAA-Net AU attention maps from 68 landmarks given in map-grid coordinates.

    landmarks: [B,68,2] float (x, y) on the ``size``×``size`` grid. Returns [B, len(aus), size, size].
    No gradient flows through the landmarks (the centres are rounded, as in JAA-Net).
    """
    if landmarks.dim() != 3 or landmarks.shape[1] != 68 or landmarks.shape[2] < 2:
        raise ValueError(f"au_attention_maps needs landmarks [B,68,2], got {tuple(landmarks.shape)}")
    unknown = [a for a in aus if int(a) not in AU_RULES_68]
    if unknown:
        raise ValueError(f"no AU attention rule for AU(s) {unknown}; known: {sorted(AU_RULES_68)}")
    lm = landmarks.detach().float()
    dev = lm.device
    ruler = (lm[:, 39, 0] - lm[:, 42, 0]).abs()  # [B]
    rules = torch.tensor([AU_RULES_68[int(a)] for a in aus], dtype=torch.float32, device=dev)  # [A,3]
    i1, i2, off = rules[:, 0].long(), rules[:, 1].long(), rules[:, 2]
    # centres [B, A, 2 centres, 2 coords]
    c = torch.stack((lm[:, i1], lm[:, i2]), 2)
    c[..., 1] = c[..., 1] + (off.view(1, -1, 1) * ruler.view(-1, 1, 1))
    c = torch.round(c)
    half = round((size - 1) / 2.0 * spatial_ratio)
    grid = torch.arange(size, dtype=torch.float32, device=dev)
    dx = (grid.view(1, 1, 1, 1, size) - c[..., 0].unsqueeze(-1).unsqueeze(-1)).abs()  # [B,A,2,1,S]
    dy = (grid.view(1, 1, 1, size, 1) - c[..., 1].unsqueeze(-1).unsqueeze(-1)).abs()  # [B,A,2,S,1]
    w = 1.0 - (dx + dy) * fill_coeff / (size * spatial_ratio)
    inside = (dx <= half) & (dy <= half)
    w = torch.where(inside, w.clamp_min(0.0), torch.zeros_like(w))
    return w.amax(2)
