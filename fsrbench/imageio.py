"""The one image I/O and resizing path of fsrbench.

* :func:`read_image` turns any readable file into uint8 RGB [H,W,3] (grayscale, palette, RGBA, 16-bit and
  CMYK are converted, explained in the docstring) or raises :class:`fsrbench.api.DataError` naming the
  file and the reason.
* :func:`pil_resize` is the canonical resizer: PIL bicubic on uint8 (antialiased when downscaling),
  rounded to uint8 — used for HR crops, LR generation (:func:`make_lr`), the harness's upsampling of LR
  inputs (:func:`upsample`) and the bicubic baseline (docs/spec/conventions.md §2). Do not mix resizers.
* :func:`matlab_imresize` is MATLAB's ``imresize(img, [h w], 'bicubic')`` (antialiased when downscaling),
  for protocols whose LR images were made with MATLAB (``lr_generator: matlab_imresize``);
  :func:`resize` dispatches on a protocol's resizer name (:data:`RESIZERS`).
* :func:`to_tensor` / :func:`tensor_to_uint8` convert between uint8 NHWC arrays and float NCHW tensors in
  [0,1]; ``tensor_to_uint8`` is the protocol's quantisation (clip to [0,1], ×255, round half to even; or
  ``mode="truncate"``: drop the fraction, as SPARNet's ``tensor_to_img`` does).
* :func:`write_png` writes atomically (:func:`fsrbench.results.atomic_write_bytes`).
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fsrbench.errors import DataError
from fsrbench.results import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: names that look like images: a folder dataset lists every such entry, and one it cannot use becomes a failed
#: image with the reason (never a silent skip)
IMAGE_LIKE_SUFFIXES = IMAGE_SUFFIXES + (".gif", ".jfif", ".pnm", ".pbm", ".tga", ".dib", ".ico", ".jp2", ".j2k",
                                        ".heic", ".heif", ".avif", ".jxl")
_ORIENTATION = 0x0112  # the EXIF orientation tag
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
        bad = int((~np.isfinite(a)).sum())
        if bad:
            raise DataError(f"{path}: float image holds NaN or inf at {bad} pixel(s); re-export it with finite values "
                            "(or as an 8/16-bit image)")
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


def _check_file(p: str) -> None:
    """DataError unless ``p`` is a regular file (checked without opening it: a FIFO would block a read)."""
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{p}: symbolic link loop; point the link at an image file or remove it") from exc
        if isinstance(exc, FileNotFoundError) and os.path.islink(p):
            raise DataError(f"{p}: dangling symbolic link (its target {os.readlink(p)} does not exist); fix or remove "
                            "the link") from exc
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{p}: is a directory, not an image file; rename or move it")
    if stat.S_ISFIFO(st.st_mode):
        raise DataError(f"{p}: is a named pipe (FIFO), not an image file; remove it")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p}: is not a regular file (socket or device); remove it")
    if st.st_size == 0:
        raise DataError(f"{p}: empty file (0 bytes)")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 RGB [H,W,3].

    Grayscale is replicated to 3 channels; palette images are expanded; alpha is composited over black;
    16-bit images are scaled to 8 bit (value·255/65535, rounded); the EXIF orientation is applied (as
    ``PIL.ImageOps.exif_transpose`` does, so a camera JPEG stored sideways is read upright). Raises DataError
    for anything else than a regular file (directory, FIFO, dangling link, link loop), empty, truncated,
    non-image, animated/multi-frame or oversized files, and float images holding NaN/inf.
    """
    p = str(path)
    _check_file(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{p}: image too large ({img.width}x{img.height})")
                frames = int(getattr(img, "n_frames", 1) or 1)
                if frames > 1:
                    raise DataError(f"{p}: animated or multi-frame image ({frames} frames); save the frame to "
                                    "score as a single-frame PNG")
                img.load()
                if img.getexif().get(_ORIENTATION, 1) not in (1, None):
                    return _to_rgb_u8(ImageOps.exif_transpose(img), p)
                return _to_rgb_u8(img, p)
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(f"{p}: not an image file PIL can read") from exc
    except PermissionError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc}); fix its permissions") from exc
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


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _matlab_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB imresize's ``contributions`` for bicubic along one axis: (weights [n_out,P], indices [n_out,P]).

    Output pixel x (1-based) samples input position u = x/s + (1 - 1/s)/2.  When shrinking (s < 1) the
    kernel is stretched by 1/s and scaled by s (antialiasing); weights are normalised to sum 1; indices
    outside the image are mirrored (symmetric padding); columns whose weights are all zero are dropped.
    """
    s = n_out / n_in
    width = 4.0 / s if s < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / s + 0.5 * (1.0 - 1.0 / s)
    left = np.floor(u - width / 2.0)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    d = u[:, None] - idx
    w = s * _cubic(s * d) if s < 1 else _cubic(d)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], idx0[:, keep]


def _round_u8(x: np.ndarray, rounding: str) -> np.ndarray:
    """double -> uint8: saturate to [0, 255], then round half away from zero (MATLAB's conversion) or half
    to even (``numpy.around``, as the Python ports of imresize do)."""
    x = np.clip(x, 0.0, 255.0)
    return (np.floor(x + 0.5) if rounding == "half_away" else np.around(x)).astype(np.uint8)


def matlab_imresize(img: np.ndarray, size: int | tuple[int, int], rounding: str = "half_away") -> np.ndarray:
    """MATLAB ``imresize(img, [h w], 'bicubic')`` of a uint8 image (antialiased when shrinking).

    As MATLAB does for uint8 input: one axis at a time (rows first when both scales are equal, else the
    axis with the smaller scale first), each pass rounded back to uint8.  ``size`` is the side or
    (width, height), as in :func:`pil_resize`.  ``rounding`` ([CHOICE]): ``half_away`` (default: MATLAB's
    double-to-uint8 rule) or ``half_even`` (numpy's ``around``, used by Python ports such as
    fatheral/matlab_imresize; the two differ only where a pass lands exactly on .5: common on synthetic
    images, rare on photographs, e.g. 1 of 12,288 values of an 8->64 upsampling of a face).  Tested against recorded outputs of that port
    (tests/metrics/test_conventions_official.py).
    """
    if img.dtype != np.uint8:
        raise TypeError(f"matlab_imresize expects uint8, got {img.dtype}")
    if rounding not in ("half_away", "half_even"):
        raise ValueError(f"rounding must be 'half_away' or 'half_even', got {rounding!r}")
    w_out, h_out = (size, size) if isinstance(size, int) else tuple(size)
    a = img[:, :, None] if img.ndim == 2 else img
    scales = (h_out / a.shape[0], w_out / a.shape[1])
    out = a
    for axis in sorted((0, 1), key=lambda k: scales[k]):  # stable: rows first on ties
        n_out = h_out if axis == 0 else w_out
        if out.shape[axis] == n_out and scales[axis] == 1.0:
            continue
        w, idx = _matlab_weights(out.shape[axis], n_out)
        src = out.astype(np.float64)
        if axis == 0:
            acc = (w[:, :, None, None] * src[idx]).sum(axis=1)
        else:
            acc = (w[None, :, :, None] * src[:, idx]).sum(axis=2)
        out = _round_u8(acc, rounding)
    return out[:, :, 0] if img.ndim == 2 else out


RESIZERS = {"pil_bicubic": pil_resize, "matlab_imresize": matlab_imresize}


def resize(img: np.ndarray, size: int | tuple[int, int], resizer: str = "pil_bicubic") -> np.ndarray:
    """Resize with a protocol's resizer by name (``pil_bicubic`` | ``matlab_imresize``)."""
    try:
        fn = RESIZERS[resizer]
    except KeyError:
        raise ValueError(f"unknown resizer {resizer!r}; supported: {', '.join(sorted(RESIZERS))}") from None
    return fn(img, size)


def make_lr(hr: np.ndarray, scale: int | None = None, size: int | None = None,
            resizer: str = "pil_bicubic") -> np.ndarray:
    """The protocol's degradation: bicubic downscale of the uint8 HR to ``hr/scale`` (or ``size``) with the
    protocol's ``lr_generator`` (default PIL bicubic)."""
    if size is None:
        if not scale:
            raise ValueError("make_lr needs scale or size")
        if hr.shape[0] % scale:
            raise ValueError(f"scale x{scale} does not divide HR size {hr.shape[0]}")
        size = hr.shape[0] // scale
    return resize(hr, size, resizer)


def upsample(lr: np.ndarray, size: int = 128, resizer: str = "pil_bicubic") -> np.ndarray:
    """The harness's upsampling of an LR image for ``input="upsampled"`` methods and the bicubic baseline
    (the protocol's ``upsampler``, default PIL bicubic)."""
    return resize(lr, size, resizer)


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


QUANTIZE_MODES = ("round", "truncate")


def tensor_to_uint8(t: Any, mode: str = "round") -> np.ndarray:
    """float tensor [B,3,H,W] (or [3,H,W]) in [0,1] -> uint8 [B,H,W,3]: clip, ×255, then ``mode``:
    ``round`` (half to even; DIC's ``quantize``) or ``truncate`` (drop the fraction; SPARNet's
    ``tensor_to_img``, which clips ``(x+1)/2·255`` and casts with ``astype(uint8)``)."""
    import torch

    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {mode!r}; supported: {', '.join(QUANTIZE_MODES)}")
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if t.ndim == 3:
        t = t[None]
    q = t.detach().float().clamp(0, 1).mul(255.0)
    q = (q.round() if mode == "round" else q.trunc()).to(torch.uint8)
    return q.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def write_png(path: str | os.PathLike[str], img: np.ndarray, fsync: bool = True) -> None:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    atomic_write_bytes(path, buf.getvalue(), fsync=fsync)
