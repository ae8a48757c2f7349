"""PSNR and SSIM under a named protocol's convention (docs/spec/conventions.md §3, docs/metrics-psnr-ssim.md).

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

Protocols with ``metric.implementation`` other than ``fsrbench`` (``dic-official-v1``, ``sparnet-v1``) are
computed by the bit-exact replicas of the papers' evaluation code in :mod:`fsrbench.metrics.conventions`.

All arithmetic is float64.  SSIM runs a fused, parallel numba kernel (separable valid-region Gaussian
correlations of E[x], E[y], E[x²+y²], E[xy] — four planes instead of five, since SSIM only needs
σx²+σy² — and the SSIM map, averaged in the same pass; docs/performance.md) when numba is installed,
otherwise separable ``scipy.ndimage`` correlations on the stacked batch.  Both agree with scikit-image to
~1e-15 (tests/metrics/test_psnr_ssim.py, tests/metrics/test_perf_ssim.py).  Option ``FSRBENCH_SSIM_BACKEND`` =
``numba`` | ``scipy`` (environment) forces one.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from fsrbench.api import CellContext, Metric
from fsrbench.metrics.conventions import batch_psnr_ssim

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


def _ssim_scipy(x: np.ndarray, y: np.ndarray, g: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """Reference path: x, y float64 [N,H,W] -> mean SSIM per plane (separable scipy correlations)."""
    from scipy import ndimage

    n, h, w = x.shape
    r = g.shape[0] // 2
    stack = np.stack([x, y, x * x + y * y, x * y], axis=1)  # [N,4,H,W]
    # separable correlation, keeping only outputs whose window lies inside the image ("valid")
    filt = ndimage.correlate1d(stack, g, axis=3, mode="constant")[..., r:w - r]
    filt = ndimage.correlate1d(filt, g, axis=2, mode="constant")[:, :, r:h - r]
    mu_x, mu_y, e_sq, e_xy = (filt[:, i] for i in range(4))
    mxy = mu_x * mu_y
    num = (2 * mxy + c1) * (2 * (e_xy - mxy) + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (e_sq - mu_x * mu_x - mu_y * mu_y + c2)
    return (num / den).mean(axis=(1, 2))


_NUMBA: dict[str, Any] = {}


def _numba_kernel() -> Any:
    """The compiled fused SSIM kernel (compiled on first use, cached on disk by numba), or None."""
    if "k" in _NUMBA:
        return _NUMBA["k"]
    try:
        from numba import njit, prange
    except ImportError:
        _NUMBA["k"] = None
        return None

    @njit(parallel=True, cache=True, fastmath=False)
    def _ssim_numba(x, y, g, c1, c2, out):  # pragma: no cover - compiled
        n, h, w = x.shape
        k = g.shape[0]
        hv = h - k + 1
        wv = w - k + 1
        for b in prange(n):
            # horizontal pass over every row: E_h[x], E_h[y], E_h[x²+y²], E_h[xy]
            hx = np.empty((h, wv))
            hy = np.empty((h, wv))
            hq = np.empty((h, wv))
            hp = np.empty((h, wv))
            sq = np.empty(w)
            pr = np.empty(w)
            for i in range(h):
                xr = x[b, i]
                yr = y[b, i]
                for j in range(w):
                    sq[j] = xr[j] * xr[j] + yr[j] * yr[j]
                    pr[j] = xr[j] * yr[j]
                for j in range(wv):
                    hx[i, j] = 0.0
                    hy[i, j] = 0.0
                    hq[i, j] = 0.0
                    hp[i, j] = 0.0
                for t in range(k):
                    gt = g[t]
                    for j in range(wv):
                        hx[i, j] += gt * xr[j + t]
                        hy[i, j] += gt * yr[j + t]
                        hq[i, j] += gt * sq[j + t]
                        hp[i, j] += gt * pr[j + t]
            # vertical pass, one valid output row at a time, then the SSIM map of that row
            mx = np.empty(wv)
            my = np.empty(wv)
            mq = np.empty(wv)
            mp = np.empty(wv)
            total = 0.0
            for i in range(hv):
                for j in range(wv):
                    mx[j] = 0.0
                    my[j] = 0.0
                    mq[j] = 0.0
                    mp[j] = 0.0
                for t in range(k):
                    gt = g[t]
                    for j in range(wv):
                        mx[j] += gt * hx[i + t, j]
                        my[j] += gt * hy[i + t, j]
                        mq[j] += gt * hq[i + t, j]
                        mp[j] += gt * hp[i + t, j]
                row = 0.0
                for j in range(wv):
                    a = mx[j]
                    c = my[j]
                    ab = a * c
                    num = (2.0 * ab + c1) * (2.0 * (mp[j] - ab) + c2)
                    den = (a * a + c * c + c1) * (mq[j] - a * a - c * c + c2)
                    row += num / den
                total += row
            out[b] = total / (hv * wv)

    _NUMBA["k"] = _ssim_numba
    return _ssim_numba


def ssim_backend() -> str:
    """``numba`` (fused kernel) or ``scipy``; ``$FSRBENCH_SSIM_BACKEND`` forces one."""
    want = os.environ.get("FSRBENCH_SSIM_BACKEND", "auto").lower()
    if want == "scipy":
        return "scipy"
    if _numba_kernel() is not None:
        return "numba"
    if want == "numba":
        raise RuntimeError("FSRBENCH_SSIM_BACKEND=numba but numba is not installed; fix: pip install numba")
    return "scipy"


def _numba_threads() -> int:
    """Follow torch's intra-op thread count (1 per torchrun worker), capped by numba's pool."""
    import sys

    import numba

    torch = sys.modules.get("torch")  # never import torch just for this
    want = int(torch.get_num_threads()) if torch is not None else numba.config.NUMBA_NUM_THREADS
    return max(1, min(want, numba.config.NUMBA_NUM_THREADS))


def ssim_planes(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5, k1: float = 0.01,
                k2: float = 0.03, data_range: float = 255.0, backend: str | None = None) -> np.ndarray:
    """Mean SSIM per image over the valid region; ``a``, ``b``: float64 [B,C,H,W]; channels averaged."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    bsz, ch, h, w = a.shape
    if h < size or w < size:
        raise ValueError(f"image {h}x{w} smaller than the {size}x{size} SSIM window")
    g = gaussian_window(size, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    x = np.ascontiguousarray(a, dtype=np.float64).reshape(bsz * ch, h, w)
    y = np.ascontiguousarray(b, dtype=np.float64).reshape(bsz * ch, h, w)
    if (backend or ssim_backend()) == "numba" and bsz * ch:
        import numba

        kernel = _numba_kernel()
        out = np.empty(bsz * ch, dtype=np.float64)
        prev = numba.get_num_threads()
        numba.set_num_threads(_numba_threads())
        try:
            kernel(x, y, g, float(c1), float(c2), out)
        finally:
            numba.set_num_threads(prev)
    else:
        out = _ssim_scipy(x, y, g, c1, c2)
    return out.reshape(bsz, ch).mean(axis=1)


def _official(sr: np.ndarray, hr: np.ndarray, p: Any, scale: int | None,
              memo: dict[Any, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR, SSIM) per image from an official replica (``metric.implementation``), once per batch."""
    a = sr[None] if sr.ndim == 3 else sr
    b = hr[None] if hr.ndim == 3 else hr
    tag = ("psnr_ssim:official", p.sha256, scale)
    if memo is not None:
        hit = memo.get(tag)
        if hit is not None and np.array_equal(hit[0], a) and np.array_equal(hit[1], b):
            return hit[2]
    crop = p.crop_border(scale)
    out = batch_psnr_ssim(a, b, p.implementation, crop)
    if memo is not None:
        memo[tag] = (a, b, out)
    return out


def psnr(sr: np.ndarray, hr: np.ndarray, protocol: Any = None, scale: int | None = None) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 RGB batches under ``protocol`` (default dic-v1)."""
    from fsrbench.protocols import get_protocol

    p = get_protocol(protocol)
    if p.implementation != "fsrbench":
        return _official(sr, hr, p, scale)[0]
    return psnr_planes(prepare(sr, p, scale), prepare(hr, p, scale), float(p.metric["psnr_max"]))


def ssim(sr: np.ndarray, hr: np.ndarray, protocol: Any = None, scale: int | None = None) -> np.ndarray:
    """Per-image SSIM of uint8 RGB batches under ``protocol`` (default dic-v1)."""
    from fsrbench.protocols import get_protocol

    p = get_protocol(protocol)
    if p.implementation != "fsrbench":
        return _official(sr, hr, p, scale)[1]
    cfg = p.metric["ssim"]
    return ssim_planes(prepare(sr, p, scale), prepare(hr, p, scale), size=int(cfg["size"]),
                       sigma=float(cfg["sigma"]), k1=float(cfg["k1"]), k2=float(cfg["k2"]))


def _shared_planes(sr: np.ndarray, hr: np.ndarray, protocol: Any, ctx: CellContext) -> tuple[np.ndarray, np.ndarray]:
    """Prepared (Y/crop) planes of a batch, computed once for PSNR and SSIM via ``ctx.memo`` (reused only
    when the arrays are byte-identical to the ones they were made from)."""
    from fsrbench.protocols import get_protocol

    p = get_protocol(protocol)
    scale = ctx.scale or None
    memo = getattr(ctx, "memo", None)
    tag = ("psnr_ssim:planes", p.sha256 if hasattr(p, "sha256") else p.id, scale)
    if memo is not None:
        hit = memo.get(tag)
        if hit is not None and hit[0].shape == sr.shape and np.array_equal(hit[0], sr) and np.array_equal(hit[1], hr):
            return hit[2], hit[3]
    a, b = prepare(sr, p, scale), prepare(hr, p, scale)
    if memo is not None:
        memo[tag] = (sr, hr, a, b)
    return a, b


class PSNR(Metric):
    name = "psnr"
    higher_is_better = True
    ideal = float("inf")
    unit = "dB"
    board_order = 10
    description = "Peak signal-to-noise ratio under the protocol's colour/crop convention"

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        from fsrbench.protocols import get_protocol

        p = get_protocol(self.protocol)
        if p.implementation != "fsrbench":
            return {"psnr": _official(sr, hr, p, ctx.scale or None, getattr(ctx, "memo", None))[0]}
        a, b = _shared_planes(sr, hr, self.protocol, ctx)
        return {"psnr": psnr_planes(a, b, float(p.metric["psnr_max"]))}


class SSIM(Metric):
    name = "ssim"
    higher_is_better = True
    ideal = 1.0
    board_order = 20
    description = "Structural similarity (Gaussian 11x11, sigma 1.5, valid region) under the protocol"

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        from fsrbench.protocols import get_protocol

        p = get_protocol(self.protocol)
        if p.implementation != "fsrbench":
            return {"ssim": _official(sr, hr, p, ctx.scale or None, getattr(ctx, "memo", None))[1]}
        cfg = p.metric["ssim"]
        a, b = _shared_planes(sr, hr, self.protocol, ctx)
        return {"ssim": ssim_planes(a, b, size=int(cfg["size"]), sigma=float(cfg["sigma"]), k1=float(cfg["k1"]),
                                    k2=float(cfg["k2"]))}
