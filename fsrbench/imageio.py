"""The one image I/O and resizing path of fsrbench.

* :func:`read_image` turns any readable file into uint8 RGB [H,W,3] (grayscale, palette, RGBA, 16-bit and
  CMYK are converted, explained in the docstring) or raises :class:`fsrbench.api.DataError` naming the
  file and the reason.
* :func:`pil_resize` is the canonical resizer: PIL bicubic on uint8 (antialiased when downscaling),
  rounded to uint8 — used for HR crops, LR generation (:func:`make_lr`), the harness's upsampling of LR
  inputs (:func:`upsample`) and the bicubic baseline (METHODS.md §0.2). Do not mix resizers.
* :func:`to_tensor` / :func:`tensor_to_uint8` convert between uint8 NHWC arrays and float NCHW tensors in
  [0,1]; ``tensor_to_uint8`` is the protocol's quantisation (clip to [0,1], ×255, round half to even).
* :func:`write_png` writes atomically (:func:`fsrbench.results.atomic_write_bytes`).
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from fsrbench.errors import DataError
from fsrbench.results import atomic_write_bytes  # noqa: F401 - also the old import path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_PIXELS = 50_000_000  # a 4000x4000 image is fine; a decompression bomb is refused


def _to_rgb_u8(img: Image.Image, path: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a = np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        a = np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # composite over black: transparent pixels carry no face content
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"), dtype=np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim != 3 or a.shape[2] != 3:
        raise DataError(f"{path}: unsupported image layout {a.shape} (mode {mode})")
    return a


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 RGB [H,W,3].

    Grayscale is replicated to 3 channels; palette images are expanded; alpha is composited over black;
    16-bit images are scaled to 8 bit (value·255/65535, rounded). Raises DataError for empty, truncated,
    non-image or oversized files.
    """
    p = str(path)
    try:
        size = os.path.getsize(p)
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise DataError(f"{p}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{p}: image too large ({img.width}x{img.height})")
                img.load()
                return _to_rgb_u8(img, p)
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(f"{p}: not an image file PIL can read") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{p}: unreadable or truncated image ({exc})") from exc


def pil_resize(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Canonical resize: PIL bicubic on uint8 RGB; ``size`` is the side or (width, height)."""
    if img.dtype != np.uint8:
        raise TypeError(f"pil_resize expects uint8, got {img.dtype}")
    wh = (size, size) if isinstance(size, int) else tuple(size)
    if img.shape[1] == wh[0] and img.shape[0] == wh[1]:
        return img.copy()
    return np.asarray(Image.fromarray(img).resize(wh, Image.BICUBIC), dtype=np.uint8)


def make_lr(hr: np.ndarray, scale: int | None = None, size: int | None = None) -> np.ndarray:
    """The protocol's degradation: PIL bicubic downscale of the uint8 HR to ``hr/scale`` (or ``size``)."""
    if size is None:
        if not scale:
            raise ValueError("make_lr needs scale or size")
        if hr.shape[0] % scale:
            raise ValueError(f"scale x{scale} does not divide HR size {hr.shape[0]}")
        size = hr.shape[0] // scale
    return pil_resize(hr, size)


def upsample(lr: np.ndarray, size: int = 128) -> np.ndarray:
    """The harness's upsampling of an LR image for ``input="upsampled"`` methods and the bicubic baseline."""
    return pil_resize(lr, size)


def center_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return img[y0:y0 + s, x0:x0 + s]


def to_tensor(batch: np.ndarray, device: Any = "cpu") -> Any:
    """uint8 [B,H,W,3] (or [H,W,3]) -> float32 tensor [B,3,H,W] in [0,1]."""
    import torch

    a = batch[None] if batch.ndim == 3 else batch
    t = torch.from_numpy(np.require(a, requirements=["C", "W"])).to(device=device)  # copies read-only views
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_uint8(t: Any) -> np.ndarray:
    """float tensor [B,3,H,W] (or [3,H,W]) in [0,1] -> uint8 [B,H,W,3]: clip, ×255, round half to even."""
    import torch

    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if t.ndim == 3:
        t = t[None]
    q = t.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return q.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def write_png(path: str | os.PathLike[str], img: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    atomic_write_bytes(path, buf.getvalue())
