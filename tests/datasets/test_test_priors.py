"""Test-time priors: LR landmarks come from the LR image alone, are cached, and failures are NaN rows."""
from __future__ import annotations

import numpy as np
import pytest

from fsrbench.cache import Cache
from fsrbench.imageio import make_lr, read_image, upsample


def test_landmarks478_lr_prior_on_real_faces(faces_dev):
    from fsrbench.api import Unavailable
    from fsrbench.data.priors import test_prior

    files = sorted(faces_dev.glob("*.png"))[:3]
    hr = np.stack([read_image(f) for f in files])
    lr = np.stack([make_lr(h, 4) for h in hr])
    up = np.stack([upsample(x) for x in lr])
    black = np.zeros((1, 32, 32, 3), np.uint8)
    cache = Cache(None)
    try:
        t = test_prior("landmarks478_lr", hr=np.concatenate([hr, hr[:1]]), lr=np.concatenate([lr, black]),
                       upsampled=np.concatenate([up, up[:1]]), cache=cache)
    except Unavailable as exc:
        pytest.skip(f"MediaPipe unavailable: {exc}")
    pts = t.numpy()
    assert pts.shape == (4, 478, 3)
    assert np.isfinite(pts[:3]).all() and np.isnan(pts[3]).all()  # no face in a black image -> NaN row
    # points live in the 128-px frame and sit on the face
    assert 10 < pts[:3, :, 0].mean() < 118 and 10 < pts[:3, :, 1].mean() < 118
    misses = cache.misses
    again = test_prior("landmarks478_lr", hr=hr, lr=lr, upsampled=up, cache=cache).numpy()
    assert cache.misses == misses and np.array_equal(again, pts[:3])  # cached, deterministic


def test_unknown_test_prior_is_unavailable():
    from fsrbench.api import Unavailable
    from fsrbench.data.priors import test_prior

    with pytest.raises(Unavailable, match="landmarks478_lr"):
        test_prior("parsing", hr=None, lr=np.zeros((1, 16, 16, 3), np.uint8), upsampled=np.zeros((1, 128, 128, 3)))
