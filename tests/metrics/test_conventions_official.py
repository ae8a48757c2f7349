"""Convention fidelity (issue 22): dic-official-v1 and sparnet-v1 reproduce the official evaluation code bit for
bit, and matlab_imresize reproduces a MATLAB imresize port — all against recorded outputs of the original code
(tests/data/make_conventions_reference.py; sources and commits in the JSON)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fsrbench.imageio import matlab_imresize, tensor_to_uint8
from fsrbench.metrics.conventions import dic_psnr_ssim, dic_y, sparnet_psnr_ssim, sparnet_y
from fsrbench.metrics.psnr_ssim import psnr, ssim, to_y
from fsrbench.protocols import get_protocol

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
DATA = REPO / "tests" / "data"
REC = json.loads((DATA / "conventions_reference.json").read_text())
ARR = dict(np.load(DATA / "conventions_reference.npz"))
PAIRS = sorted(REC["sparnet_psnr_ssim"])
# the reference outputs were recorded on an AVX-512 x86-64 CPU; OpenCV's SSIM filter sums in a CPU-dependent order
_AVX512 = "avx512f" in (Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else "")


def _pattern64() -> np.ndarray:  # the integer pattern of the recording script (not stored)
    yy, xx = np.mgrid[0:64, 0:64]
    return np.stack([(xx * 37 + yy * 91) % 256, (xx * yy) % 256, ((xx - 32) ** 2 + (yy - 32) ** 2) % 256],
                    -1).astype(np.uint8)


@pytest.mark.parametrize("key", sorted(REC["dic_calc_metrics"]))
def test_dic_replica_is_bit_exact(key: str) -> None:
    name, crop = key.split("/")
    c = int(crop.removeprefix("crop"))
    p, s = dic_psnr_ssim(ARR[f"{name}_sr"], ARR[f"{name}_hr"], c)
    assert repr(p) == REC["dic_calc_metrics"][key]["psnr"]
    want = float(REC["dic_calc_metrics"][key]["ssim"])
    if _AVX512:  # the recording CPU's class: bit for bit
        assert repr(s) == REC["dic_calc_metrics"][key]["ssim"]
    else:  # OpenCV's filter2D takes another SIMD path (e.g. AVX2 on AMD): it sums in another order, last bits differ
        assert abs(s - want) <= 1e-13 * abs(want), (s, want)


@pytest.mark.parametrize("name", PAIRS)
def test_sparnet_replica_is_bit_exact(name: str) -> None:
    p, s = sparnet_psnr_ssim(ARR[f"{name}_sr"], ARR[f"{name}_hr"])
    assert repr(p) == REC["sparnet_psnr_ssim"][name]["psnr"] and repr(s) == REC["sparnet_psnr_ssim"][name]["ssim"]


def test_y_planes_match_both_codes_at_exact_ties() -> None:
    """The tie images hold only RGB colours whose exact Y is x.5 (DIC rounds) or an integer (SPARNet
    truncates): the float arithmetic order decides those pixels."""
    for name in ("tie_half32", "tie_int32", "astronaut64"):
        hr = ARR[f"{name}_hr"]
        np.testing.assert_array_equal(dic_y(hr), ARR[f"{name}_y_dic"])
        np.testing.assert_array_equal(sparnet_y(hr), ARR[f"{name}_y_sparnet"])
    # the fixture discriminates: fsrbench's clean formula (x @ c / 255 + 16) differs from both codes there
    assert (to_y(ARR["tie_half32_hr"], "round") != ARR["tie_half32_y_dic"]).sum() > 50
    assert (to_y(ARR["tie_int32_hr"], "truncate") != ARR["tie_int32_y_sparnet"]).sum() > 50


def test_protocols_use_the_replicas_through_the_metrics() -> None:
    sr = np.stack([ARR["astronaut64_sr"][:48, :48], ARR["noise48_sr"]])
    hr = np.stack([ARR["astronaut64_hr"][:48, :48], ARR["noise48_hr"]])
    for i in range(2):
        pd_, sd = dic_psnr_ssim(sr[i], hr[i], 4)
        assert psnr(sr, hr, "dic-official-v1", 4)[i] == pd_ and ssim(sr, hr, "dic-official-v1", 4)[i] == sd
        ps, ss = sparnet_psnr_ssim(sr[i], hr[i])
        assert psnr(sr, hr, "sparnet-v1")[i] == ps and ssim(sr, hr, "sparnet-v1")[i] == ss
    # the documented overflow effect: PSNR equals dic-v1's (these images hold no tie colours, where the two Y
    # formulas can differ by one level); SSIM is computed on 256 - Y,
    # so it is higher than dic-v1's on a dark image (mean Y < 128) and lower on a bright one
    np.testing.assert_allclose(psnr(sr, hr, "dic-official-v1", 4), psnr(sr, hr, "dic-v1", 4), rtol=1e-12)
    bright_hr, bright_sr = ARR["astronaut64_hr"][None], ARR["astronaut64_sr"][None]
    assert to_y(bright_hr).mean() > 128
    assert ssim(bright_sr, bright_hr, "dic-official-v1", 4)[0] < ssim(bright_sr, bright_hr, "dic-v1", 4)[0]
    dark_hr, dark_sr = 255 - bright_hr, 255 - bright_sr
    assert ssim(dark_sr, dark_hr, "dic-official-v1", 4)[0] > ssim(dark_sr, dark_hr, "dic-v1", 4)[0]


def test_sparnet_tensor_to_img_truncation() -> None:
    """SPARNet's tensor_to_img(out, normal=True) on a [-1,1] network output == fsrbench's truncating
    quantisation of the SPARNet baseline's (out + 1) / 2 (baselines/sparnet/method.py)."""
    import torch

    x = torch.from_numpy(ARR["sparnet_net_out"])
    t01 = (x + 1) / 2
    ours = tensor_to_uint8(t01, "truncate")[0]
    np.testing.assert_array_equal(ours, ARR["sparnet_tensor_to_img"])
    assert (tensor_to_uint8(t01, "round")[0] != ARR["sparnet_tensor_to_img"]).sum() > 100  # rounding differs
    assert get_protocol("sparnet-v1").quantize == "truncate" and get_protocol("dic-v1").quantize == "round"


@pytest.mark.parametrize("src", ["astro64", "pattern64"])
def test_matlab_imresize_matches_the_port(src: str) -> None:
    img = ARR["astronaut64_hr"] if src == "astro64" else _pattern64()
    for size in (16, 8):
        np.testing.assert_array_equal(matlab_imresize(img, size, rounding="half_even"), ARR[f"imresize_{src}_to{size}"])
    up = matlab_imresize(ARR[f"imresize_{src}_to8"], 64, rounding="half_even")
    np.testing.assert_array_equal(up, ARR[f"imresize_{src}_8to64"])
    # MATLAB's own rounding (half away from zero) moves only values that land exactly on .5: at most 1 level
    diff = matlab_imresize(ARR[f"imresize_{src}_to8"], 64).astype(int) - ARR[f"imresize_{src}_8to64"]
    assert set(np.unique(diff)) <= {0, 1} and (diff != 0).mean() < 0.01


def test_matlab_imresize_odd_sizes_and_pil_differs() -> None:
    from fsrbench.imageio import make_lr, pil_resize

    np.testing.assert_array_equal(matlab_imresize(ARR["imresize_in_odd"], (6, 9), rounding="half_even"),
                                  ARR["imresize_odd_to9x6"])
    hr = ARR["astronaut64_hr"]
    assert not np.array_equal(make_lr(hr, 4, resizer="matlab_imresize"), pil_resize(hr, 16))
    np.testing.assert_array_equal(make_lr(hr, 4, resizer="matlab_imresize"), matlab_imresize(hr, 16))
    with pytest.raises(ValueError, match="unknown resizer"):
        make_lr(hr, 4, resizer="lanczos")


def test_protocol_files_are_checked() -> None:
    import yaml

    from fsrbench.protocols import _validate

    base = dict(get_protocol("dic-official-v1").definition)
    bad = dict(base, metric=dict(base["metric"], crop_border=0))
    with pytest.raises(ValueError, match="dic-calc-metrics computes with crop_border = 'scale'"):
        _validate(bad, Path("p.yaml"))
    with pytest.raises(ValueError, match="metric.implementation = 'matlab'"):
        _validate(dict(base, metric=dict(base["metric"], implementation="matlab")), Path("p.yaml"))
    with pytest.raises(ValueError, match="lr_generator = 'lanczos'"):
        _validate(dict(base, lr_generator="lanczos"), Path("p.yaml"))
    assert yaml.safe_load((Path(get_protocol("sparnet-v1").path)).read_text())["version"] == 2


def test_runs_use_the_protocols_resizers_and_quantisation(tmp_path: Path) -> None:
    """A run under dic-matlab-v1 feeds MATLAB-imresize LR and upsampling (the bicubic row is MATLAB bicubic);
    under sparnet-v1 the SR output is truncated (a method returning x.9 levels loses them)."""
    import pandas as pd

    from fsrbench.api import Method
    from fsrbench.data.demo import DemoDataset
    from fsrbench.eval.runner import RunSpec, run
    from fsrbench.imageio import read_image, upsample
    from fsrbench.registry import registry

    class NearlyUp(Method):
        name = "nearly-up"
        input = "upsampled"

        def super_resolve(self, batch):  # the upsampled input plus 0.9 of a level
            return (batch.upsampled * 255 + 0.9) / 255

    registry("methods").register("nearly-up", NearlyUp, override=True)
    try:
        ids = DemoDataset().ids()[:2]
        hr = np.stack([DemoDataset().load(i).hr for i in ids])
        res = run(RunSpec(methods=["bicubic", "nearly-up"], datasets=["demo"], scales=[8], metrics=["psnr"],
                          out=str(tmp_path / "m"), protocol="dic-matlab-v1", limit=2, progress=False),
                  log=lambda m: None)
        sr = read_image(tmp_path / "m" / "sr" / "demo" / "x8" / "bicubic" / f"{ids[0]}.png")
        np.testing.assert_array_equal(sr, matlab_imresize(matlab_imresize(hr[0], 16), 128))
        assert not np.array_equal(sr, upsample(matlab_imresize(hr[0], 16)))
        res = run(RunSpec(methods=["nearly-up"], datasets=["demo"], scales=[8], metrics=["psnr"],
                          out=str(tmp_path / "s"), protocol="sparnet-v1", limit=2, progress=False),
                  log=lambda m: None)
        sr = read_image(tmp_path / "s" / "sr" / "demo" / "x8" / "nearly-up" / f"{ids[0]}.png")
        from fsrbench.imageio import make_lr

        np.testing.assert_array_equal(sr, upsample(make_lr(hr[0], 8)))  # +0.9 truncated away
        assert res.metrics["cells"][0]["protocol"]["id"] == "sparnet-v1"
        assert len(pd.read_csv(tmp_path / "s" / "per_image.csv")) == 2
    finally:
        registry("methods").unregister("nearly-up")
