"""One image I/O path: every odd-but-valid image becomes uint8 RGB; broken files raise DataError by name."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fsrbench.api import DataError
from fsrbench.imageio import make_lr, pil_resize, read_image, tensor_to_uint8, to_tensor, upsample


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_grayscale_rgba_palette_16bit(tmp_path):
    g = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 256
    gray = read_image(_save(Image.fromarray(g.astype(np.uint8), "L"), tmp_path / "g.png"))
    assert gray.shape == (64, 64, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # transparent pixel -> black
    out = read_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert out.shape == (8, 8, 3) and out[1, 1, 0] == 200 and out[0, 0, 0] == 0
    pal = Image.fromarray(np.full((8, 8, 3), 77, np.uint8)).convert("P", palette=Image.ADAPTIVE)
    assert read_image(_save(pal, tmp_path / "p.png"))[0, 0, 0] == 77
    sixteen = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert read_image(_save(sixteen, tmp_path / "s.png")).max() == 255


@pytest.mark.parametrize("kind", ["empty", "text", "truncated_png", "truncated_jpg", "missing"])
def test_broken_files_raise_dataerror_naming_the_file(tmp_path, kind):
    p = tmp_path / f"bad_{kind}.png"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not an image")
    elif kind.startswith("truncated"):
        fmt = "PNG" if kind.endswith("png") else "JPEG"
        good = tmp_path / f"good.{fmt.lower()}"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, fmt)
        p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=p.name):
        read_image(p)


def test_canonical_resizer_is_pil_bicubic():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC))
    assert np.array_equal(make_lr(hr, 8), ref)
    assert make_lr(hr, 4).shape == (32, 32, 3)
    assert upsample(make_lr(hr, 8)).shape == (128, 128, 3)
    assert np.array_equal(pil_resize(hr, 128), hr)


def test_quantisation_round_trip_and_clipping():
    import torch

    a = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(tensor_to_uint8(to_tensor(a)), a)
    t = torch.tensor([-0.5, 0.5 / 255, 1.5 / 255, 2.0]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    q = tensor_to_uint8(t)[0, :, :, 0]
    assert q.tolist() == [[0, 0], [2, 255]]  # clip; round half to even (0.5 -> 0, 1.5 -> 2)
