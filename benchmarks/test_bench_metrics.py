"""PSNR+SSIM (dic-v1, batched) vs scikit-image SSIM alone, and LPIPS-alex batched throughput."""
from __future__ import annotations

import numpy as np
import pytest

from benchutil import absolute, augment_faces, best_of, report


@pytest.fixture(scope="module")
def y_pairs(hr_faces):
    """dic-v1 Y planes (x4, border cropped) of 64 real/augmented faces and their bicubic SR."""
    from fsrbench.imageio import make_lr, upsample
    from fsrbench.metrics.psnr_ssim import to_y

    hr = augment_faces(hr_faces, 64, seed=1)
    sr = np.stack([upsample(make_lr(h, 4)) for h in hr])
    c = 4
    ys = np.ascontiguousarray(to_y(sr, "round")[:, c:-c, c:-c])
    yh = np.ascontiguousarray(to_y(hr, "round")[:, c:-c, c:-c])
    return ys, yh, sr, hr


def test_psnr_ssim_vs_skimage(benchmark, y_pairs):
    from skimage.metrics import structural_similarity

    from fsrbench.metrics.psnr_ssim import psnr_planes, ssim_backend, ssim_planes

    ys, yh, _, _ = y_pairs
    n = len(ys)

    def ours():
        a, b = ys[:, None], yh[:, None]
        return psnr_planes(a, b), ssim_planes(a, b)

    def skimage_ssim():
        return np.array([structural_similarity(ys[i], yh[i], gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=255) for i in range(n)])

    _, s_ours = ours()  # compiles the numba kernel (cached on disk afterwards)
    s_ref = skimage_ssim()
    np.testing.assert_allclose(s_ours, s_ref, rtol=0, atol=1e-6)
    t_sk, t_ours = [], []
    for _ in range(3):  # interleaved, so both see the same machine load
        t_sk.append(best_of(skimage_ssim, 3))
        t_ours.append(best_of(ours, 3))
    ratio = min(t_sk) / min(t_ours)
    benchmark.pedantic(ours, rounds=5, iterations=1)
    report(benchmark, "psnr+ssim vs skimage ssim", backend=ssim_backend(), images=n,
           skimage_ms_per_img=min(t_sk) / n * 1e3, ours_ms_per_img=min(t_ours) / n * 1e3, ratio=ratio,
           max_abs_diff=float(np.abs(s_ours - s_ref).max()))
    assert ratio >= 3.0, f"PSNR+SSIM only {ratio:.2f}x scikit-image's SSIM (target >= 3x)"


def test_ssim_metric_path_uint8(benchmark, y_pairs):
    """The metric objects on uint8 RGB (Y conversion + crop shared between PSNR and SSIM): reported."""
    from skimage.metrics import structural_similarity

    from fsrbench.api import CellContext
    from fsrbench.metrics.psnr_ssim import PSNR, SSIM, to_y
    from fsrbench.protocols import get_protocol

    _, _, sr, hr = y_pairs
    p = get_protocol("dic-v1")
    mets = [PSNR(protocol=p), SSIM(protocol=p)]

    def ours():
        ctx = CellContext(dataset="b", scale=4, method="m", protocol=p)
        return [m.per_image(sr, hr, ctx) for m in mets]

    def skimage_path():  # Y conversion + crop + skimage SSIM
        ys, yh = to_y(sr, "round")[:, 4:-4, 4:-4], to_y(hr, "round")[:, 4:-4, 4:-4]
        return [structural_similarity(ys[i], yh[i], gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255) for i in range(len(sr))]

    ours()
    t_sk, t_ours = best_of(skimage_path, 3), best_of(ours, 3)
    benchmark.pedantic(ours, rounds=3, iterations=1)
    report(benchmark, "psnr+ssim metrics on uint8 RGB vs to_y+skimage", ratio=t_sk / t_ours,
           ours_ms_per_img=t_ours / len(sr) * 1e3)
    assert t_sk / t_ours > 1.0


def test_lpips_batched_throughput(benchmark, hr_faces, tmp_path):
    """LPIPS-alex, batches of 100 pairs, 2 CPU threads. Two numbers in the same run: *cold* (both images
    through AlexNet: the reference implementation, and the first cell of a run) and *warm HR* (the HR
    features come from the analysis cache: what the harness does for every method and scale after the
    first). The target (>= 300 pairs/s, asserted with FSRBENCH_BENCH_ABSOLUTE=1) is checked on the warm
    path; warm must be >= 1.5x cold in the same run."""
    import torch

    from fsrbench.api import CellContext, Unavailable
    from fsrbench.cache import Cache
    from fsrbench.imageio import make_lr, upsample
    from fsrbench.metrics.lpips import LPIPSMetric

    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = LPIPSMetric()
        try:
            m.setup("cpu")
        except Unavailable as exc:
            pytest.skip(str(exc))
        hr = augment_faces(hr_faces, 100, seed=2)
        sr = np.stack([upsample(make_lr(h, 4)) for h in hr])
        ctx = CellContext("bench", 4, "bicubic", None, cache=Cache(tmp_path / "cache"))
        m.distance(sr[:10], hr[:10])  # warm-up
        m.per_image(sr, hr, ctx)  # fills the HR-feature cache (the first cell of a run)
        t_cold = best_of(lambda: m.distance(sr, hr), 3)
        t_warm = best_of(lambda: m.per_image(sr, hr, ctx), 3)
        one = best_of(lambda: [m.distance(sr[i:i + 1], hr[i:i + 1]) for i in range(20)], 2) / 20
        benchmark.pedantic(lambda: m.per_image(sr, hr, ctx), rounds=3, iterations=1)
    finally:
        torch.set_num_threads(prev)
    cold, warm = len(sr) / t_cold, len(sr) / t_warm
    report(benchmark, "lpips alex batched", pairs_per_s_warm_hr=warm, pairs_per_s_cold=cold,
           warm_vs_cold=warm / cold, batch=100, threads=2, batched_vs_one_by_one=one * len(sr) / t_cold)
    assert warm / cold >= 1.5, f"cached HR features should save the HR forward pass: {warm / cold:.2f}x"
    if absolute():
        assert warm >= 300, f"LPIPS {warm:.0f} pairs/s (warm HR cache) < 300"
