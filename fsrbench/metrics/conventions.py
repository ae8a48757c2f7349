"""PSNR/SSIM exactly as the official evaluation code of two FSR papers computes them (bit for bit).

fsrbench's own PSNR/SSIM (:mod:`fsrbench.metrics.psnr_ssim`) implements each convention cleanly and fast;
it agrees with the papers' code to ~1e-12 but not bit for bit, and it deliberately does not copy their
quirks.  The protocols that promise *the papers' released numbers* set ``metric.implementation`` to one of
the replicas below, which follow the original arithmetic step by step (own code; checked against recorded
outputs of the original code, tests/metrics/test_conventions_official.py):

``dic-calc-metrics`` — DIC (Maclory/Deep-Iterative-Collaboration, code/utils/util.py ``calc_metrics``):

1. Y = ``round(dot(rgb_u8, [65.481, 128.553, 24.966]) / 255 + 16)`` as uint8;
2. ``crop`` pixels removed per side;
3. the Y planes are multiplied by 255 **in uint8** before PSNR and SSIM, so every value wraps to
   (255·Y) mod 256 = 256 − Y.  PSNR is unchanged by this (differences only change sign); SSIM is not,
   because its luminance term depends on the local means (computed at 256 − μ instead of μ): higher than
   the convention's where the face is darker than mid-grey (μ < 128), lower where it is brighter.  On the
   face sets measured in issue 22 DIC's SSIM was always higher: by 3.6e-4 on average at ×4 and 1.8e-3 at
   ×8, up to 1.3e-2 on one image (docs/protocols.md);
4. PSNR = 20·log10(255 / sqrt(MSE)) (float64); SSIM = OpenCV ``filter2D`` with the 11×11 Gaussian
   (σ 1.5, ``getGaussianKernel`` outer product), valid region, C1 = (0.01·255)², C2 = (0.03·255)².

``sparnet-psnr-ssim`` — SPARNet (chaofengc/Face-SPARNet, psnr_ssim.py):

1. Y = ``uint8(16 + rgb_u8 @ ([65.481, 128.553, 24.966] / 255))`` (truncated; the coefficient division
   comes first, which differs from ``x @ c / 255 + 16`` on ~4 pixels per million);
2. no border crop; PSNR = 10·log10(255² / MSE);
3. SSIM = scikit-image ``structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5,
   use_sample_covariance=False)`` on the uint8 planes (data range 255 from the dtype).

SPARNet's SR images are also *truncated* to uint8 (``tensor_to_img``: ``astype(uint8)``): the protocol sets
``metric.quantize: truncate`` (:func:`fsrbench.imageio.tensor_to_uint8`).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

IMPLEMENTATIONS = ("fsrbench", "dic-calc-metrics", "sparnet-psnr-ssim")
_DIC_COEFFS = [65.481, 128.553, 24.966]


# ------------------------------------------------------------------------------------------------
# DIC
# ------------------------------------------------------------------------------------------------
def dic_y(img: np.ndarray) -> np.ndarray:
    """DIC's Y of a uint8 RGB image [H,W,3] -> uint8 [H,W] (``rgb2ycbcr(img, only_y=True)``)."""
    if img.dtype != np.uint8:
        raise TypeError(f"dic_y expects uint8 RGB, got {img.dtype}")
    return (_dot_fma(img, _DIC_COEFFS) / 255.0 + 16.0).round().astype(np.uint8)


_Q = 2.0 ** 48  # every partial sum below is a multiple of 2**-48 (the coefficients' ulps are 2**-46..2**-48)


def _fma_u8(x: np.ndarray, c: float, acc: np.ndarray) -> np.ndarray:
    """Correctly rounded ``fma(x, c, acc)`` for uint8 ``x`` and non-negative ``acc`` on the 2**-48 grid, computed
    exactly in uint64 units of 2**-48 (x * c * 2**48 < 2**61, the sum < 2**64) and rounded once to float64."""
    units = np.uint64(c * _Q)  # exact: c has 53 significant bits and an ulp >= 2**-48
    total = x.astype(np.uint64) * units + (acc * _Q).astype(np.uint64)
    return total.astype(np.float64) / _Q


def _dot_fma(img: np.ndarray, coeffs) -> np.ndarray:
    """``np.dot(img, coeffs)`` as the official code computed it on the recording machine (OpenBLAS, x86-64 with
    FMA: r*c0, then fma(g, c1, .), then fma(b, c2, .)), on every CPU. np.dot itself is CPU-dependent: another
    BLAS kernel (e.g. AVX2 on AMD) rounds some exact-tie pixels the other way (tests/metrics/test_conventions_official.py)."""
    r, g, b = (img[..., i] for i in range(3))
    acc = r.astype(np.float64) * coeffs[0]
    return _fma_u8(b, coeffs[2], _fma_u8(g, coeffs[1], acc))


def _dic_overflow(y: np.ndarray) -> np.ndarray:
    """DIC's ``plane * 255`` on a uint8 plane: the product stays uint8 and wraps modulo 256."""
    return np.multiply(y, np.uint8(255), dtype=np.uint8)


def _dic_psnr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return 20 * math.log10(255.0 / math.sqrt(mse))


def _dic_ssim(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    mu_a2, mu_b2, mu_ab = mu_a ** 2, mu_b ** 2, mu_a * mu_b
    var_a = filt(a ** 2) - mu_a2
    var_b = filt(b ** 2) - mu_b2
    cov = filt(a * b) - mu_ab
    smap = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))
    return float(smap.mean())


def dic_psnr_ssim(sr: np.ndarray, hr: np.ndarray, crop: int) -> tuple[float, float]:
    """DIC's ``calc_metrics(sr, hr, crop_border=crop)`` for one uint8 RGB pair -> (PSNR, SSIM)."""
    if crop < 1:
        raise ValueError("DIC's calc_metrics needs crop_border >= 1 (it slices [c:-c])")
    ys = _dic_overflow(dic_y(sr)[crop:-crop, crop:-crop])
    yh = _dic_overflow(dic_y(hr)[crop:-crop, crop:-crop])
    return _dic_psnr(ys, yh), _dic_ssim(ys, yh)


# ------------------------------------------------------------------------------------------------
# SPARNet
# ------------------------------------------------------------------------------------------------
def sparnet_y(img: np.ndarray) -> np.ndarray:
    """SPARNet's Y of a uint8 RGB image [H,W,3] -> uint8 [H,W] (``rgb2y_matlab``, truncating)."""
    if img.dtype != np.uint8:
        raise TypeError(f"sparnet_y expects uint8 RGB, got {img.dtype}")
    k = np.array(_DIC_COEFFS) / 255.0
    return (16 + np.matmul(img, k)).astype(np.uint8)


def sparnet_psnr_ssim(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """SPARNet's ``PSNR(sr, hr)`` and ``SSIM(hr, sr)`` for one uint8 RGB pair."""
    from skimage.metrics import structural_similarity

    ys, yh = sparnet_y(sr), sparnet_y(hr)
    mse = np.mean(np.square(ys.astype(np.float64) - yh.astype(np.float64)))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))
    ssim = float(structural_similarity(yh, ys, gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    return psnr, ssim


def official_psnr_ssim(implementation: str) -> Callable[[np.ndarray, np.ndarray, int], tuple[float, float]]:
    """``f(sr_u8[H,W,3], hr_u8[H,W,3], crop) -> (psnr, ssim)`` of an official implementation."""
    if implementation == "dic-calc-metrics":
        return dic_psnr_ssim
    if implementation == "sparnet-psnr-ssim":
        return lambda sr, hr, crop: sparnet_psnr_ssim(sr, hr)
    raise ValueError(f"unknown metric implementation {implementation!r}; supported: {', '.join(IMPLEMENTATIONS)}")


def batch_psnr_ssim(sr: np.ndarray, hr: np.ndarray, implementation: str, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR [B], SSIM [B]) of uint8 RGB batches [B,H,W,3] with an official implementation."""
    f = official_psnr_ssim(implementation)
    vals = [f(sr[i], hr[i], crop) for i in range(len(hr))]
    return np.array([v[0] for v in vals], dtype=np.float64), np.array([v[1] for v in vals], dtype=np.float64)
