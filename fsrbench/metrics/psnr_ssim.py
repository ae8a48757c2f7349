"""PSNR and SSIM under a named protocol's convention (CONVENTIONS.md, docs/metrics-psnr-ssim.md).

Inputs are uint8 RGB arrays [B,H,W,3] (the harness has already clipped and rounded the SR output).
The protocol's ``metric`` block fixes:

* ``color``: ``y_bt601`` — Y = 16 + (65.481·R + 128.553·G + 24.966·B)/255 with R,G,B = uint8/255
  (MATLAB ``rgb2ycbcr``), then ``y_rounding`` ``round`` (nearest) or ``truncate`` (floor); or ``rgb``;
* ``crop_border``: pixels removed from every side (``scale`` = the scale factor);
* PSNR = 10·log10(MAX² / MSE) with MAX = 255 (MSE pooled over pixels and channels; +inf when MSE = 0);
* SSIM: Gaussian window (11×11, σ = 1.5, normalised), statistics over the *valid* region only,
  population (co)variances, C1 = (k1·255)², C2 = (k2·255)²; for RGB the mean of the three channel SSIMs.
  This equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`` and MATLAB's ``ssim`` as used by DIC.

All arithmetic is float64; SSIM filters the whole batch with separable ``scipy.ndimage`` correlations.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from fsrbench.api import CellContext, Metric

_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def to_y(img: np.ndarray, rounding: str = "round") -> np.ndarray:
    """uint8 RGB [...,H,W,3] -> float64 Y [...,H,W] in [16, 235] (BT.601 limited range)."""
    y = img.astype(np.float64) @ _Y_COEFFS / 255.0 + 16.0
    if rounding == "round":
        return np.round(y)
    if rounding == "truncate":
        return np.floor(y)
    if rounding == "none":
        return y
    raise ValueError(f"unknown Y rounding {rounding!r}")


def prepare(img: np.ndarray, protocol: Any, scale: int | None) -> np.ndarray:
    """Apply the protocol's colour conversion and border crop -> float64 [B,C,H,W]."""
    m = protocol.metric
    a = img[None] if img.ndim == 3 else img
    if m["color"] == "y_bt601":
        planes = to_y(a, m["y_rounding"])[:, None]
    else:
        planes = a.astype(np.float64).transpose(0, 3, 1, 2)
    c = protocol.crop_border(scale)
    if c:
        planes = planes[:, :, c:-c, c:-c]
    return np.ascontiguousarray(planes)


def psnr_planes(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> np.ndarray:
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, np.inf, 10.0 * np.log10(max_val ** 2 / np.maximum(mse, 1e-300)))


@lru_cache(maxsize=8)
def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def ssim_planes(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5, k1: float = 0.01,
                k2: float = 0.03, data_range: float = 255.0) -> np.ndarray:
    """Mean SSIM per image over the valid region; ``a``, ``b``: float64 [B,C,H,W]; channels averaged."""
    from scipy import ndimage

    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    bsz, ch, h, w = a.shape
    if h < size or w < size:
        raise ValueError(f"image {h}x{w} smaller than the {size}x{size} SSIM window")
    g = gaussian_window(size, sigma)
    r = size // 2
    x = a.reshape(bsz * ch, h, w)
    y = b.reshape(bsz * ch, h, w)
    stack = np.stack([x, y, x * x, y * y, x * y], axis=1)  # [N,5,H,W]
    # separable correlation, keeping only outputs whose window lies inside the image ("valid")
    filt = ndimage.correlate1d(stack, g, axis=3, mode="constant")[..., r:w - r]
    filt = ndimage.correlate1d(filt, g, axis=2, mode="constant")[:, :, r:h - r]
    mu_x, mu_y, e_xx, e_yy, e_xy = (filt[:, i] for i in range(5))
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    vx = e_xx - mu_x * mu_x
    vy = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (vx + vy + c2)
    return (num / den).mean(axis=(1, 2)).reshape(bsz, ch).mean(axis=1)


def psnr(sr: np.ndarray, hr: np.ndarray, protocol: Any = None, scale: int | None = None) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 RGB batches under ``protocol`` (default dic-v1)."""
    from fsrbench.protocols import get_protocol

    p = get_protocol(protocol)
    return psnr_planes(prepare(sr, p, scale), prepare(hr, p, scale), float(p.metric["psnr_max"]))


def ssim(sr: np.ndarray, hr: np.ndarray, protocol: Any = None, scale: int | None = None) -> np.ndarray:
    """Per-image SSIM of uint8 RGB batches under ``protocol`` (default dic-v1)."""
    from fsrbench.protocols import get_protocol

    p = get_protocol(protocol)
    cfg = p.metric["ssim"]
    return ssim_planes(prepare(sr, p, scale), prepare(hr, p, scale), size=int(cfg["size"]),
                       sigma=float(cfg["sigma"]), k1=float(cfg["k1"]), k2=float(cfg["k2"]))


class PSNR(Metric):
    name = "psnr"
    higher_is_better = True
    ideal = float("inf")
    unit = "dB"
    description = "Peak signal-to-noise ratio under the protocol's colour/crop convention"

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        return {"psnr": psnr(sr, hr, self.protocol, ctx.scale or None)}


class SSIM(Metric):
    name = "ssim"
    higher_is_better = True
    ideal = 1.0
    description = "Structural similarity (Gaussian 11x11, sigma 1.5, valid region) under the protocol"

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        return {"ssim": ssim(sr, hr, self.protocol, ctx.scale or None)}
