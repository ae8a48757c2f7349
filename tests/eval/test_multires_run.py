"""Multi-resolution evaluation (``fsrbench run --multires``, UFVNet protocol; docs/multires.md) on the demo set.

The references are computed here with PIL and scikit-image directly, not with fsrbench's own resize/metric code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from fsrbench.data.demo import DemoDataset
from fsrbench.eval.runner import RunSpec, run
from fsrbench.leaderboard import leaderboard

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PROBES = REPO / "tests" / "fixture_plugins" / "probes.py"
PLUGINS = [f"{PROBES}:ProbeLR", f"{PROBES}:ProbeUp", f"{PROBES}:ProbeAny"]
N = 2  # base images


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def _y(img: np.ndarray) -> np.ndarray:  # BT.601 limited range, rounded (protocol dic-v1)
    x = img.astype(np.float64) / 255.0
    return np.round(16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2])


def _psnr(sr: np.ndarray, hr: np.ndarray, crop: int) -> float:
    sl = slice(crop, 128 - crop)
    return peak_signal_noise_ratio(_y(hr)[sl, sl], _y(sr)[sl, sl], data_range=255)


@pytest.fixture(scope="module")
def mr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mr") / "run"
    spec = RunSpec(methods=["bicubic", "probe-lr", "probe-up", "probe-any"], datasets=["demo"], scales=[4, 8],
                   metrics=["psnr", "ssim"], out=str(out), progress=False, plugins=PLUGINS, multires="MR3",
                   limit=N, batch_size=4)
    return spec, run(spec, log=lambda m: None)


def test_cells_one_per_any_scale_method_and_one_per_model_scale(mr_run):
    _, res = mr_run
    assert sorted(res.computed) == sorted([("demo-MR3", 0, "bicubic"), ("demo-MR3", 0, "probe-any"),
                                           ("demo-MR3", 4, "probe-lr"), ("demo-MR3", 8, "probe-lr"),
                                           ("demo-MR3", 4, "probe-up"), ("demo-MR3", 8, "probe-up")])
    pi = res.per_image
    assert (pi["status"] == "ok").all()
    base = DemoDataset().ids()[:N]  # --limit counts base images: every one at every LR size
    for _, cell in pi.groupby(["scale", "method"]):
        assert sorted(cell["image_id"]) == sorted(f"{i}@{s}" for i in base for s in (16, 32, 64))
        assert sorted(cell["lr_size"].astype(int)) == sorted([16, 32, 64] * N)


def test_inputs_and_per_pair_crop_match_independent_references(mr_run):
    spec, res = mr_run
    pi = res.per_image.set_index(["method", "scale", "image_id"])
    ds = DemoDataset()
    for sid in ds.ids()[:N]:
        hr = ds.load(sid).hr
        for s in (16, 32, 64):
            lr = _resize(hr, s)
            crop = round(128 / s)
            pid = f"{sid}@{s}"
            # any-scale methods see the LR natively
            bic = _resize(lr, 128)
            assert pi.loc[("bicubic", 0, pid), "psnr"] == pytest.approx(_psnr(bic, hr, crop), abs=1e-9)
            near = np.repeat(np.repeat(lr, 128 // s, 0), 128 // s, 1)
            assert pi.loc[("probe-any", 0, pid), "psnr"] == pytest.approx(_psnr(near, hr, crop), abs=1e-9)
            for S in (4, 8):
                # fixed-scale "lr" models: LR resized to the model's input size (FR input, UFVNet Table I)
                small = lr if s == 128 // S else _resize(lr, 128 // S)
                fr = np.repeat(np.repeat(small, S, 0), S, 1)
                assert pi.loc[("probe-lr", S, pid), "psnr"] == pytest.approx(_psnr(fr, hr, crop), abs=1e-9)
                # "upsampled" models: the LR upsampled straight to 128 (OR input, Table II) = bicubic's input
                assert pi.loc[("probe-up", S, pid), "psnr"] == pi.loc[("bicubic", 0, pid), "psnr"]
    pngs = sorted(Path(spec.out).glob("sr/demo-MR3/x8/probe-lr/*.png"))  # one SR image per (image, LR size)
    assert len(pngs) == 3 * N and np.asarray(Image.open(pngs[0])).shape == (128, 128, 3)


def test_summary_has_per_size_means_and_the_board_a_column_per_size(mr_run):
    spec, res = mr_run
    summ = json.loads((Path(spec.out) / "cells" / "demo-MR3" / "x8" / "probe-lr" / "summary.json").read_text())
    assert summ["multires"]["set"] == "MR3" and summ["multires"]["model_scale"] == 8
    cell = res.per_image[(res.per_image["method"] == "probe-lr") & (res.per_image["scale"] == 8)]
    for s in (16, 32, 64):
        assert summ["by_lr_size"][str(s)]["n"] == N
        assert summ["by_lr_size"][str(s)]["psnr"] == pytest.approx(cell[cell["lr_size"] == s]["psnr"].mean())
    assert summ["metrics"]["psnr"]["value"] == pytest.approx(cell["psnr"].mean())
    md = leaderboard(spec.out)
    assert "## demo-MR3 — every LR size of MR3 (16, 32, 64)" in md
    assert "| probe-lr (x8 model)" in md and "| probe-any " in md
    assert "psnr ↑ by LR size" in md and "| 16² " in md.replace("|   ", "| ")
    # the x8 probe is exact at 16² (its own input size): its row there equals the nearest-neighbour probe's
    table = md[md.index("psnr ↑ by LR size"):].split("\n\n")[0].splitlines()
    row = {ln.split("|")[1].strip(): [c.strip(" *") for c in ln.split("|")[2:-1]] for ln in table[2:]}
    assert row["probe-lr (x8 model)"][0] == row["probe-any"][0]
    assert row["probe-lr (x4 model)"][1] == row["probe-any"][1]  # x4 model at 32²
    assert float(row["probe-lr (x8 model)"][0]) == pytest.approx(summ["by_lr_size"]["16"]["psnr"], abs=0.006)


def test_rerun_reuses_cells_and_unknown_set_fails_early(mr_run, tmp_path):
    spec, _ = mr_run
    again = run(spec, log=lambda m: None)
    assert again.computed == [] and len(again.cached) == 6
    with pytest.raises(ValueError, match="MR5"):
        run(RunSpec(methods=["bicubic"], datasets=["demo"], metrics=["psnr"], out=str(tmp_path / "x"),
                    progress=False, multires="MR5"), log=lambda m: None)


def test_any_scale_weights_trained_at_one_scale_serve_every_scale(tmp_path):
    """An any-scale method's checkpoint (trained with --scale 8) is found for x4 cells and for native
    multi-resolution cells; a fixed-scale method's x8 checkpoint is never used at x4."""
    import torch

    from fsrbench.api import Unavailable
    from fsrbench.registry import import_target
    from fsrbench.train.checkpoints import load_for_eval
    from fsrbench.train.config import resolve_config
    from fsrbench.train.loop import train
    from tests.plugins.synthetic import write_images

    torch.set_num_threads(1)
    plug = REPO / "tests" / "plugins" / "tiny_method.py"
    images = write_images(tmp_path / "imgs", n=8)
    for cls in ("TinyAnySR", "TinySR"):
        m = import_target(f"{plug}:{cls}")()
        cfg = dict(resolve_config(m, "default"), steps=2, val_every=0, ckpt_every=2)
        train(m, 8, f"folder:{images}", config=cfg, device="cpu", out=tmp_path / "ck" / f"{m.name}-x8",
              progress=False)
    any_m = import_target(f"{plug}:TinyAnySR")()
    for scale in (0, 4, 8):
        _, card = load_for_eval(any_m, scale, "cpu", None, {"checkpoint_dir": str(tmp_path / "ck")})
        assert card["method"] == "tiny-any-test" and card["scale"] == 8
    with pytest.raises(Unavailable, match="tiny-test x4"):
        load_for_eval(import_target(f"{plug}:TinySR")(), 4, "cpu", None, {"checkpoint_dir": str(tmp_path / "ck")})
    res = run(RunSpec(methods=["tiny-any-test", "tiny-test"], datasets=["demo"], scales=[8], metrics=["psnr"],
                      out=str(tmp_path / "run"), progress=False, plugins=[f"{plug}:TinyAnySR", f"{plug}:TinySR"],
                      multires="MR3", limit=1, checkpoint_dir=str(tmp_path / "ck")), log=lambda m: None)
    assert sorted(res.computed) == [("demo-MR3", 0, "tiny-any-test"), ("demo-MR3", 8, "tiny-test")]
    assert (res.per_image["status"] == "ok").all() and len(res.per_image) == 6


def test_stored_results_keep_lr_size_and_render_the_same_board(mr_run, tmp_path):
    import pandas as pd

    from fsrbench.report.boards import render_stored, store_results

    spec, _ = mr_run
    d = store_results(spec.out, "mr", root=tmp_path)
    stored = pd.read_csv(d / "per_image.csv.gz")
    assert sorted(set(stored["lr_size"])) == [16, 32, 64]
    assert render_stored(d) == leaderboard(spec.out, title="mr")
