"""Training data pipeline: LR on the fly, seeded flips with mirrored priors, resumable sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fsrbench.imageio import make_lr, upsample
from fsrbench.train.data import (ResumableSampler, TrainSet, collate, flip_prior, make_loader, prior_tables,
                                 split_holdout, to_train_batch)
from plugins.synthetic import ArrayDataset  # tests/plugins


def test_split_holdout():
    ids = [f"x{i}" for i in range(50)]
    tr, va = split_holdout(ids, 7, seed=3)
    assert len(va) == 7 and len(tr) == 43 and not set(tr) & set(va)
    assert (tr, va) == split_holdout(ids, 7, seed=3)  # deterministic
    assert va != split_holdout(ids, 7, seed=4)[1]  # seeded
    assert split_holdout(ids, 0) == (ids, [])
    with pytest.raises(ValueError, match="val_holdout"):
        split_holdout(ids, 50)


def test_lr_is_made_with_the_protocol_degrader_and_flips_are_seeded():
    ds = ArrayDataset(8)
    ts = TrainSet(ds, ds.ids(), scale=8, flip=True, seed=5)
    flips = []
    for i in range(8):
        for epoch in range(5):
            it = ts[(i, epoch)]
            hr = ds.imgs[i][:, ::-1] if it["flipped"] else ds.imgs[i]
            assert np.array_equal(it["hr"], hr)
            assert it["lr"].shape == (16, 16, 3) and np.array_equal(it["lr"], make_lr(np.ascontiguousarray(hr), 8))
            assert np.array_equal(it["up"], upsample(it["lr"], 128))
            assert ts[(i, epoch)]["flipped"] == it["flipped"]  # same (seed, epoch, index) -> same decision
            flips.append(it["flipped"])
    assert 10 < sum(flips) < 30  # ~half of 40
    no_flip = TrainSet(ds, ds.ids(), scale=4, flip=False, seed=5)
    assert not any(no_flip[(i, 0)]["flipped"] for i in range(8))


def test_flipped_landmarks_follow_the_image(cache_dir):
    from fsrbench.data.priors import FLIP_PERM_68

    ds = ArrayDataset(10, landmarks=True)
    tables = prior_tables(ds, ["landmarks68"], 8)
    ts = TrainSet(ds, ds.ids(), scale=8, priors=tables, flip=True, seed=0)
    seen_flip = False
    for i in range(10):
        it = ts[(i, 0)]
        lm = it["priors"]["landmarks68"]
        assert bool(it["priors"]["landmarks68_ok"])
        if not it["flipped"]:
            assert np.array_equal(lm, ds.lms[i])
            continue
        seen_flip = True
        # hand-made expectation: point j of the flipped image = mirror of point perm[j] of the original
        want = np.stack([127 - ds.lms[i][FLIP_PERM_68, 0], ds.lms[i][FLIP_PERM_68, 1]], -1)
        assert np.allclose(lm, want)
        # the dot drawn at original point 36 is, in the flipped image, at flipped point perm[36] (= 45)
        x, y = lm[FLIP_PERM_68[36]].astype(int)
        assert FLIP_PERM_68[36] == 45 and tuple(it["hr"][y, x]) == (255, 255, 255)
    assert seen_flip


def test_flip_parsing_and_au():
    lab = np.array([[2, 4, 0], [3, 5, 1]], dtype=np.uint8)
    assert np.array_equal(flip_prior("parsing", lab, 3), np.array([[0, 5, 3], [1, 4, 2]], dtype=np.uint8))
    assert np.array_equal(flip_prior("skin", np.array([[1, 0, 0]]), 3), np.array([[0, 0, 1]]))
    au = np.array([1.0, 0.0, 1.0])
    assert flip_prior("au", au, 128) is au
    from fsrbench.api import Unavailable

    with pytest.raises(Unavailable, match="flip=false"):
        flip_prior("heatmaps_custom", au, 128)


def test_sampler_resumes_mid_epoch_and_splits_ranks():
    full = list(ResumableSampler(20, 1, 0, seed=1).__iter__())
    s = ResumableSampler(20, 1, 0, seed=1)
    s.set_position(0, 8)
    assert list(s) == full[8:] and len(s) == 12
    s.set_position(1, 0)
    e1 = list(s)
    assert [i for i, _ in e1] != [i for i, _ in full] and all(e == 1 for _, e in e1)
    # two ranks see disjoint halves whose union is the single-process epoch
    r0 = ResumableSampler(20, 2, 0, seed=1)
    r1 = ResumableSampler(20, 2, 1, seed=1)
    a, b = [i for i, _ in r0], [i for i, _ in r1]
    assert not set(a) & set(b) and sorted(a + b) == sorted(i for i, _ in full)
    assert sorted(a[:2] + b[:2]) == sorted(i for i, _ in full[:4])  # global batch 4 = same images


def test_batches_do_not_depend_on_workers():
    ds = ArrayDataset(12)
    ts = TrainSet(ds, ds.ids(), scale=4, flip=True, seed=2)

    def run(workers: int) -> list[torch.Tensor]:
        s = ResumableSampler(len(ts), 1, 0, seed=2)
        s.set_position(1, 0)
        return [b["hr"] for b in make_loader(ts, s, 4, workers, seed=2)]

    a, b = run(0), run(2)
    assert len(a) == 3 and all(torch.equal(x, y) for x, y in zip(a, b))


def test_train_batch_tensors():
    ds = ArrayDataset(4)
    ts = TrainSet(ds, ds.ids(), scale=8, flip=False)
    raw = collate([ts[(i, 0)] for i in range(4)])
    tb = to_train_batch(raw, 8, "cpu")
    assert tb.hr.shape == (4, 3, 128, 128) and tb.lr.shape == (4, 3, 16, 16) and tb.upsampled.shape == (4, 3, 128, 128)
    assert tb.hr.dtype == torch.float32 and tb.ids == ds.ids()
    assert torch.allclose(tb.hr[1].permute(1, 2, 0) * 255, torch.from_numpy(ds.imgs[1]).float())


def test_unreadable_image_is_replaced_with_a_warning(tmp_path):
    from plugins.synthetic import write_images

    root = write_images(tmp_path / "imgs", n=4)
    (root / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    from fsrbench.train.data import open_dataset

    ds = open_dataset(f"folder:{root}")
    ts = TrainSet(ds, ds.ids(), scale=8, flip=False)
    with pytest.warns(UserWarning, match="img_001.png.*another image"):
        it = ts[(1, 0)]
    assert it["id"] == "img_002.png"


def test_rot90_and_random_scale_augmentations():
    """rot90: the HR is one of the four rotations of the image; random_scale [1.3, 1.3]: every sample is
    either a zoom-in (no black border, not the original) or a zoom-out (black border around a shrunken face);
    both seeded; both refused when the method takes priors (the engine does not transform them)."""
    from fsrbench.api import Unavailable

    ds = ArrayDataset(6)
    rot = TrainSet(ds, ds.ids(), scale=4, flip=False, seed=1, rot90=True)
    ks = []
    for i in range(6):
        for epoch in range(4):
            hr = rot[(i, epoch)]["hr"]
            k = [k for k in range(4) if np.array_equal(hr, np.rot90(ds.imgs[i], k))]
            assert len(k) == 1
            ks.append(k[0])
            assert np.array_equal(rot[(i, epoch)]["hr"], hr)
    assert len(set(ks)) == 4
    zoom = TrainSet(ds, ds.ids(), scale=8, flip=False, seed=1, random_scale=[1.3, 1.3])
    kinds = set()
    for i in range(6):
        for epoch in range(4):
            it = zoom[(i, epoch)]
            hr = it["hr"]
            assert hr.shape == (128, 128, 3) and hr.dtype == np.uint8
            assert not np.array_equal(hr, ds.imgs[i])
            black_rows = int((hr.reshape(128, -1).max(axis=1) == 0).sum())
            black_cols = int((hr.transpose(1, 0, 2).reshape(128, -1).max(axis=1) == 0).sum())
            kinds.add("out" if black_rows + black_cols >= 128 - 98 else "in")  # 128/1.3 = 98 px face
            assert np.array_equal(it["lr"], make_lr(hr, 8))
            assert np.array_equal(zoom[(i, epoch)]["hr"], hr)
    assert kinds == {"in", "out"}
    same = TrainSet(ds, ds.ids(), scale=8, flip=False, random_scale=[1.0, 1.0])
    assert np.array_equal(same[(0, 0)]["hr"], ds.imgs[0])
    with pytest.raises(ValueError, match="random_scale"):
        TrainSet(ds, ds.ids(), scale=8, random_scale=[1.3])
    with pytest.raises(Unavailable, match="rot90/random_scale"):
        TrainSet(ds, ds.ids(), scale=8, priors={"landmarks68": object()}, rot90=True)
