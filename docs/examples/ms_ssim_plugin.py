"""A complete fsrbench metric plugin: multi-scale SSIM (Wang, Simoncelli & Bovik 2003), in one module.

docs/plugins.md walks through it.  Nothing else in fsrbench knows this metric: the boards put its summary in
the main table and the mean rank, mark methods significantly worse than the best and keep its column in
stored boards, all from the class attributes below (``tests/test_plugin_proof.py`` checks each of them).

Run it without installing anything::

    fsrbench run --plugin docs/examples/ms_ssim_plugin.py:MSSSIM --metrics psnr,ms_ssim --datasets demo

or register it in your package's pyproject.toml::

    [project.entry-points."fsrbench.metrics"]
    ms_ssim = "my_package.ms_ssim_plugin:MSSSIM"

Definition (the one of ``piq.multi_scale_ssim``): the image planes of the protocol (dic-v1: the Y channel,
``scale`` pixels cropped per side, like SSIM) in [0, 1]; at every level, Gaussian-weighted (11x11,
sigma 1.5) local means, variances and covariance over the valid region, contrast-structure
cs = (2 s_xy + C2) / (s_xx + s_yy + C2) and, at the coarsest level, SSIM = l * cs with
l = (2 m_x m_y + C1) / (m_x^2 + m_y^2 + C1), C1 = 0.01^2, C2 = 0.03^2; between levels a 2x2 average pooling
(an odd side is first padded by one replicated row/column at the top/left).  MS-SSIM = prod_j max(v_j, 0)^w_j
over the levels' mean cs (and the last level's mean SSIM), averaged over the colour planes.

[CHOICE] ms_ssim.levels: 4 levels with the first four weights of the paper (0.0448, 0.2856, 0.3001, 0.2363),
normalised to sum to 1.  The paper's 5 levels need images of at least (11 - 1) * 2^4 + 1 = 161 pixels; fsrbench's
faces are 128 pixels (120 after the x4 crop), so the fifth level would be smaller than the 11x11 window.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fsrbench import Metric
from fsrbench.api import CellContext
from fsrbench.metrics.psnr_ssim import prepare

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363])


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable Gaussian correlation over the valid region: [N,H,W] -> [N,H-k+1,W-k+1]."""
    x = sliding_window_view(x, len(g), axis=2) @ g
    return sliding_window_view(x, len(g), axis=1) @ g


def _pool(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd side is first padded by one replicated row/column at the top/left."""
    if x.shape[1] % 2 or x.shape[2] % 2:
        x = np.pad(x, ((0, 0), (1, 0), (1, 0)), mode="edge")
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return x[:, :h, :w].reshape(x.shape[0], h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ms_ssim(x: np.ndarray, y: np.ndarray, weights: np.ndarray = WEIGHTS, size: int = 11, sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """MS-SSIM of every plane pair of ``x``, ``y`` (float [N,H,W] in [0, 1]) -> [N]."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    g = _gaussian(size, sigma)
    c1, c2 = k1 ** 2, k2 ** 2
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    values = []
    for level in range(len(w)):
        if level:
            x, y = _pool(x), _pool(y)
        mx, my = _filter(x, g), _filter(y, g)
        sxx = _filter(x * x, g) - mx * mx
        syy = _filter(y * y, g) - my * my
        sxy = _filter(x * y, g) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < len(w) - 1:
            values.append(cs.mean(axis=(1, 2)))
        else:
            values.append(((2 * mx * my + c1) / (mx * mx + my * my + c1) * cs).mean(axis=(1, 2)))
    return np.prod(np.maximum(np.stack(values), 0.0) ** w[:, None], axis=0)


class MSSSIM(Metric):
    name = "ms_ssim"
    higher_is_better = True
    ideal = 1.0
    description = "multi-scale SSIM (4 levels, Gaussian 11x11 sigma 1.5) on the protocol's planes and crop"
    # Everything the boards need is the default of fsrbench.Metric for a metric with one per-image column:
    #   primary = ("ms_ssim",)                  -> main table, mean rank and significance marks
    #   summary_columns = {"ms_ssim": "ms_ssim"} -> the mark is a paired test of this column
    #   stored_columns = ("ms_ssim",)           -> kept in leaderboards/results/*/per_image.csv.gz
    #   board_order = 1000                      -> after the built-in metrics

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, Any]:
        a = prepare(sr, self.protocol, ctx.scale or None) / 255.0  # [B, C, H, W] planes of the protocol
        b = prepare(hr, self.protocol, ctx.scale or None) / 255.0
        n, c = a.shape[:2]
        per_plane = ms_ssim(a.reshape(n * c, *a.shape[2:]), b.reshape(n * c, *b.shape[2:]))
        return {"ms_ssim": per_plane.reshape(n, c).mean(axis=1)}
