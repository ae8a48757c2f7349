"""Performance-related behaviour of the analysis cache and of the shared per-batch work."""
from __future__ import annotations

import numpy as np

from fsrbench.api import CellContext
from fsrbench.cache import Cache, image_key
from fsrbench.metrics import face_common as fc


def test_memory_layer_is_bounded_but_disk_keeps_everything(tmp_path):
    c = Cache(tmp_path, mem_entries=3)
    for i in range(10):
        c.put("m", f"k{i}", {"v": np.array([i])})
    assert len(c._mem) == 3
    fresh = Cache(tmp_path)
    assert all(int(fresh.get("m", f"k{i}")["v"][0]) == i for i in range(10))
    assert fresh.hits == 10 and fresh.misses == 0
    mem_only = Cache(None, mem_entries=1)  # nowhere else to keep entries: nothing is dropped
    for i in range(4):
        mem_only.put("m", f"k{i}", {"v": i})
    assert mem_only.get("m", "k0") == {"v": 0}


def test_peek_is_not_counted(tmp_path):
    c = Cache(tmp_path)
    assert c.peek("m", "absent") is None
    c.put("m", "k", {"v": 1})
    assert Cache(tmp_path).peek("m", "k")["v"] == 1
    assert (c.hits, c.misses) == (0, 0)


def _ctx(cache, **opts):
    return CellContext(dataset="d", scale=4, method="m", protocol=None, cache=cache, options=opts)


def test_sr_identical_to_hr_reuses_the_hr_analysis_without_writing_sr(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[1] ^= 1  # image 1 differs, 0 and 2 are byte-identical to HR
    calls: list[tuple[str, list[int]]] = []

    def compute(side, images):
        def f(miss):
            calls.append((side, list(miss)))
            return [{"ok": True, "v": np.array([float(images[i].sum())])} for i in miss]
        return f

    cache = Cache(tmp_path)
    keys_hr = [image_key(h) for h in hr]
    keys_sr = [image_key(s) for s in sr]
    hr_vals = fc._cached_each(_ctx(cache), "model", keys_hr, [None] * 3, compute("hr", hr), "hr")
    sr_vals = fc._cached_each(_ctx(cache), "model", keys_sr, [None] * 3, compute("sr", sr), "sr")
    assert calls == [("hr", [0, 1, 2]), ("sr", [1])]
    assert [float(v["v"][0]) for v in sr_vals] == [float(s.sum()) for s in sr]
    assert float(hr_vals[1]["v"][0]) != float(sr_vals[1]["v"][0])
    # the SR-only result was not written (cache_sr is off), so a new process recomputes it ...
    calls.clear()
    fc._cached_each(_ctx(Cache(tmp_path)), "model", keys_sr, [None] * 3, compute("sr", sr), "sr")
    assert calls == [("sr", [1])]
    # ... unless cache_sr is on
    fc._cached_each(_ctx(Cache(tmp_path), cache_sr="true"), "model", keys_sr, [None] * 3, compute("sr", sr), "sr")
    calls.clear()
    fc._cached_each(_ctx(Cache(tmp_path)), "model", keys_sr, [None] * 3, compute("sr", sr), "sr")
    assert calls == []


def test_psnr_and_ssim_share_the_prepared_planes(monkeypatch):
    from fsrbench.metrics import psnr_ssim
    from fsrbench.protocols import get_protocol

    p = get_protocol("dic-v1")
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    n = {"prepare": 0}
    real = psnr_ssim.prepare

    def counting(*a, **k):
        n["prepare"] += 1
        return real(*a, **k)

    monkeypatch.setattr(psnr_ssim, "prepare", counting)
    ctx = CellContext(dataset="d", scale=4, method="m", protocol=p)
    got_p = psnr_ssim.PSNR(protocol=p).per_image(sr.copy(), hr.copy(), ctx)["psnr"]
    got_s = psnr_ssim.SSIM(protocol=p).per_image(sr.copy(), hr.copy(), ctx)["ssim"]
    assert n["prepare"] == 2  # SR + HR once, not once per metric
    # a different batch in the same memo is not served from it
    sr2 = sr.copy()
    sr2[0, 0, 0, 0] ^= 255
    psnr_ssim.SSIM(protocol=p).per_image(sr2, hr, ctx)
    assert n["prepare"] == 4
    monkeypatch.setattr(psnr_ssim, "prepare", real)
    np.testing.assert_allclose(got_p, psnr_ssim.psnr(sr, hr, p, 4), rtol=0, atol=0)
    np.testing.assert_allclose(got_s, psnr_ssim.ssim(sr, hr, p, 4), rtol=0, atol=0)


def test_cache_arrays_on_disk_and_in_memory(tmp_path):
    """get_array/put_array: .npy entries on disk (never in the memory LRU), a memory-only cache keeps them;
    misses and hits are counted; a corrupt file is a miss."""
    a = np.arange(12, dtype=np.float16)
    disk = Cache(tmp_path / "c")
    assert disk.get_array("m", "ab12") is None and disk.misses == 1
    disk.put_array("m", "ab12", a)
    assert len(disk._mem) == 0 and (tmp_path / "c" / "m" / "ab" / "ab12.npy").is_file()
    np.testing.assert_array_equal(disk.get_array("m", "ab12"), a)
    assert disk.hits == 1 and list((tmp_path / "c").rglob(".tmp-*")) == []
    (tmp_path / "c" / "m" / "ab" / "ab12.npy").write_bytes(b"junk")
    assert disk.get_array("m", "ab12") is None and disk.misses == 2
    mem = Cache(None)
    mem.put_array("m", "k", a)
    np.testing.assert_array_equal(mem.get_array("m", "k"), a)
    assert mem.get_array("m", "other") is None
