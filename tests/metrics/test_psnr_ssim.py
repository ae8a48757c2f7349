"""PSNR/SSIM conventions checked against independent references (scikit-image, piq, hand-computed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import fsrbench
from fsrbench.imageio import make_lr, read_image, upsample
from fsrbench.metrics.psnr_ssim import psnr, ssim, to_y


def _pairs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8)
    # smooth the noise so SSIM is in a realistic range
    from scipy.ndimage import uniform_filter

    hr = uniform_filter(hr.astype(float), size=(1, 5, 5, 1)).round().astype(np.uint8)
    sr = np.stack([upsample(make_lr(h, 4)) for h in hr])
    return sr, hr


def _real_pairs(faces_dev, scale, n=8):
    files = sorted(faces_dev.glob("*.png"))[:n]
    hr = np.stack([read_image(f) for f in files])
    sr = np.stack([upsample(make_lr(h, scale)) for h in hr])
    return sr, hr


def test_y_conversion_hand_computed():
    px = np.array([[[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]]],
                  dtype=np.uint8)
    y = to_y(px, "none")[0, 0]
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R,G,B = uint8 / 255 * 255
    expect = [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966,
              16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255]
    np.testing.assert_allclose(y, expect, atol=1e-9)
    np.testing.assert_array_equal(to_y(px, "round")[0, 0], np.round(expect))
    np.testing.assert_array_equal(to_y(px, "truncate")[0, 0], np.floor(expect))


@pytest.mark.parametrize("protocol,rounding,crop", [("dic-v1", "round", "scale"), ("sparnet-v1", "truncate", 0)])
@pytest.mark.parametrize("scale", [4, 8])
def test_y_metrics_match_scikit_image(protocol, rounding, crop, scale):
    sr, hr = _pairs()
    c = scale if crop == "scale" else 0
    sl = slice(c, 128 - c)
    ys = to_y(sr, rounding)[:, sl, sl]
    yh = to_y(hr, rounding)[:, sl, sl]
    ref_psnr = [peak_signal_noise_ratio(yh[i], ys[i], data_range=255) for i in range(len(sr))]
    ref_ssim = [structural_similarity(ys[i], yh[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=255) for i in range(len(sr))]
    np.testing.assert_allclose(psnr(sr, hr, protocol, scale), ref_psnr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ssim(sr, hr, protocol, scale), ref_ssim, rtol=0, atol=1e-10)


def test_y_metrics_match_scikit_image_on_real_faces(faces_dev):
    sr, hr = _real_pairs(faces_dev, 8)
    ys, yh = to_y(sr)[:, 8:-8, 8:-8], to_y(hr)[:, 8:-8, 8:-8]
    ref = [structural_similarity(ys[i], yh[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255) for i in range(len(sr))]
    np.testing.assert_allclose(ssim(sr, hr, "dic-v1", 8), ref, atol=1e-10)
    assert 0.3 < np.mean(ref) < 0.95


def test_rgb_protocol_matches_piq():
    piq = pytest.importorskip("piq")
    sr, hr = _pairs(4, seed=1)
    c = 4
    x = torch.from_numpy(sr[:, c:-c, c:-c]).permute(0, 3, 1, 2).double() / 255
    y = torch.from_numpy(hr[:, c:-c, c:-c]).permute(0, 3, 1, 2).double() / 255
    ref_ssim = piq.ssim(x, y, data_range=1.0, reduction="none", downsample=False).numpy()
    ref_psnr = piq.psnr(x, y, data_range=1.0, reduction="none").numpy()
    np.testing.assert_allclose(ssim(sr, hr, "rgb-v1", 4), ref_ssim, atol=1e-6)
    # piq adds eps=1e-8 to the [0,1]-scale MSE before the log: ~4e-5 dB at these error levels
    np.testing.assert_allclose(psnr(sr, hr, "rgb-v1", 4), ref_psnr, atol=1e-4)


def test_uniform_offset_psnr_hand_computed():
    hr = np.full((1, 128, 128, 3), 100, np.uint8)
    sr = hr.copy()
    sr[..., 1] = 110  # G +10 -> Y differs by 128.553*10/255 = 5.0413 -> rounded Y difference 5
    y_diff = np.round(16 + (65.481 * 100 + 128.553 * 110 + 24.966 * 100) / 255) - \
        np.round(16 + (65.481 + 128.553 + 24.966) * 100 / 255)
    assert y_diff == 5
    assert psnr(sr, hr, "dic-v1", 4)[0] == pytest.approx(10 * np.log10(255 ** 2 / 25), abs=1e-12)
    # RGB: MSE pooled over channels = 100/3
    assert psnr(sr, hr, "rgb-v1", 4)[0] == pytest.approx(10 * np.log10(255 ** 2 / (100 / 3)), abs=1e-12)


def test_identical_images_are_ideal():
    _, hr = _pairs(3)
    assert np.all(np.isinf(psnr(hr, hr, "dic-v1", 8)))
    np.testing.assert_array_equal(ssim(hr, hr, "dic-v1", 8), 1.0)


def test_metric_objects_on_tensors_need_the_scale_for_dic():
    sr, hr = _pairs(2)
    m = fsrbench.get_metric("psnr")
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    with pytest.raises(ValueError, match="scale"):
        m(t(sr), t(hr))
    np.testing.assert_allclose(m(t(sr), t(hr), scale=4), psnr(sr, hr, "dic-v1", 4))
    ss = fsrbench.get_metric("ssim", protocol="sparnet-v1")
    np.testing.assert_allclose(ss(t(sr), t(hr)), ssim(sr, hr, "sparnet-v1"))
