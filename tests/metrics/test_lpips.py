"""LPIPS (alex, v0.1) metric: calibration on the official example images, basic properties, batching."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsrbench.api import CellContext
from fsrbench.metrics.lpips import LPIPSMetric


@pytest.fixture(scope="module")
def metric() -> LPIPSMetric:
    import torch

    torch.set_num_threads(1)
    m = LPIPSMetric()
    m.setup("cpu")
    return m


def _read(p: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(p).convert("RGB"))


def test_calibration_official_examples(shared_data: Path, metric: LPIPSMetric) -> None:
    d = shared_data / "lpips-ref"
    if not all((d / f).is_file() for f in ("ex_ref.png", "ex_p0.png", "ex_p1.png")):
        pytest.skip(f"official LPIPS example images not found in {d}")
    ref, p0, p1 = (_read(d / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1"))
    # reference values documented by richzhang/PerceptualSimilarity (README, lpips_2imgs.py): 0.722 / 0.138
    d0, d1 = metric.distance(ref, p0)[0], metric.distance(ref, p1)[0]
    assert abs(d0 - 0.722) < 1e-3, d0
    assert abs(d1 - 0.138) < 1e-3, d1
    # per_image (the harness path: float16 HR features, cached) stays within 1e-4 of the exact distance
    both = metric.per_image(np.stack([p0, p1]), np.stack([ref, ref]), CellContext("t", 4, "m", None))
    np.testing.assert_allclose(both["lpips"], [d0, d1], atol=1e-4)


def test_identity_is_ideal_and_metric_attributes(metric: LPIPSMetric) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(metric.distance(a, a), 0.0)
    assert LPIPSMetric.name == "lpips" and LPIPSMetric.higher_is_better is False and LPIPSMetric.ideal == 0.0


def test_monotone_in_noise_and_batch_size_invariant(metric: LPIPSMetric) -> None:
    from skimage import data

    img = data.astronaut()[::4, ::4][:128, :128].copy()  # 128x128 public-domain face photo
    rng = np.random.default_rng(1)
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8) for s in (5, 20, 60)]
    d = metric.distance(np.stack(noisy), np.stack([img] * 3))
    assert d[0] < d[1] < d[2]
    small = LPIPSMetric(batch_size=2)
    small.setup("cpu")
    np.testing.assert_allclose(small.distance(np.stack(noisy), np.stack([img] * 3)), d, atol=1e-6)


def test_rejects_bad_input(metric: LPIPSMetric) -> None:
    with pytest.raises(ValueError):
        metric.distance(np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.float32))


def test_hr_features_cached_on_disk_bit_identical_and_not_held_in_memory(tmp_path: Path, metric: LPIPSMetric) -> None:
    """The HR side is computed once and reused: a warm cache gives the very same bits as a cold one, the
    entries live on disk only (not in the in-memory LRU), and the numbers stay within 1e-4 of the exact
    LPIPS of the reference implementation."""
    from skimage import data

    from fsrbench.cache import Cache

    img = data.astronaut()[::4, ::4][:128, :128].copy()
    rng = np.random.default_rng(3)
    hr = np.stack([img, img[:, ::-1], np.roll(img, 5, axis=0)])
    sr = np.clip(hr + rng.normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    exact = metric.distance(sr, hr)
    cache = Cache(tmp_path / "cache")
    ctx = CellContext("t", 4, "m", None, cache=cache)
    cold = metric.per_image(sr, hr, ctx)["lpips"]
    assert cache.misses == 3 and len(list((tmp_path / "cache").rglob("*.npy"))) == 3
    assert len(cache._mem) == 0  # bulky feature maps are not kept in memory
    warm = metric.per_image(sr, hr, ctx)["lpips"]
    assert cache.hits == 3
    np.testing.assert_array_equal(cold, warm)
    no_cache = metric.per_image(sr, hr, CellContext("t", 4, "m", None))["lpips"]
    np.testing.assert_array_equal(cold, no_cache)
    np.testing.assert_allclose(cold, exact, atol=1e-4)
    assert np.abs(cold - exact).max() > 0  # the float16 path really is the one that ran
    np.testing.assert_array_equal(metric.per_image(hr, hr, ctx)["lpips"], 0.0)  # identical images: exactly 0
    # a corrupt or truncated cache entry is recomputed, not trusted
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    files[0].write_bytes(b"not an array")
    np.save(files[1], np.zeros(10, dtype=np.float16))
    np.testing.assert_array_equal(metric.per_image(sr, hr, ctx)["lpips"], cold)
