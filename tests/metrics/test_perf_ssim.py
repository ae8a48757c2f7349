"""The fast SSIM paths (fused numba kernel, scipy fallback) against scikit-image, an independent reference."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fsrbench.metrics import psnr_ssim
from fsrbench.metrics.psnr_ssim import ssim_planes

BACKENDS = ["scipy"] + (["numba"] if psnr_ssim._numba_kernel() is not None else [])


def _sk(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """skimage per image; channels averaged (a, b: [B,C,H,W])."""
    return np.array([np.mean([structural_similarity(a[i, c], b[i, c], gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=255)
                              for c in range(a.shape[1])]) for i in range(a.shape[0])])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5, 1, 120, 120), (3, 3, 128, 128), (2, 1, 11, 11), (2, 1, 37, 23)])
def test_ssim_backends_match_skimage(backend, shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(16, 236, shape).astype(np.float64)
    b = np.clip(a + rng.normal(0, 10, shape).round(), 16, 235)
    b[0] = a[0]  # identical pair: SSIM exactly 1
    got = ssim_planes(a, b, backend=backend)
    np.testing.assert_allclose(got, _sk(a, b), rtol=0, atol=1e-9)
    assert got[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ssim_backends_non_integer_and_extreme(backend):
    rng = np.random.default_rng(7)
    a = rng.random((3, 1, 40, 40)) * 255
    b = 255 - a  # anti-correlated: negative SSIM
    b[1] = 0.0  # flat image
    np.testing.assert_allclose(ssim_planes(a, b, backend=backend), _sk(a, b), rtol=0, atol=1e-9)


def test_backend_switch(monkeypatch):
    monkeypatch.setenv("FSRBENCH_SSIM_BACKEND", "scipy")
    assert psnr_ssim.ssim_backend() == "scipy"
    monkeypatch.setenv("FSRBENCH_SSIM_BACKEND", "auto")
    assert psnr_ssim.ssim_backend() == BACKENDS[-1]


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="smaller"):
        ssim_planes(np.zeros((1, 1, 10, 10)), np.zeros((1, 1, 10, 10)))
    with pytest.raises(ValueError, match="mismatch"):
        ssim_planes(np.zeros((1, 1, 20, 20)), np.zeros((1, 1, 20, 21)))
