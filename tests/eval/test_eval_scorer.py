"""fsrbench.eval: Components build a method's inputs, CellScorer scores a cell without a Runner; both are
checked against independent references (PIL, scikit-image)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from fsrbench.data import open_dataset
from fsrbench.eval.components import Components
from fsrbench.eval.scorer import Cell, CellScorer


def _pil(img: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((side, side), Image.BICUBIC))


def _y(img: np.ndarray) -> np.ndarray:  # BT.601 limited-range Y, rounded (dic-v1)
    f = img.astype(np.float64)
    return np.round(16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255)


@pytest.fixture(scope="module")
def demo_hr():
    ds = open_dataset("demo")
    ids = ds.ids()[:4]
    return ids, np.stack([ds.load(i).hr for i in ids])


@pytest.mark.parametrize("scale", [4, 8])
def test_a_methods_inputs_are_pil_bicubic_of_the_hr(demo_hr, scale):
    from fsrbench.registry import methods

    ids, hr = demo_hr
    comp = Components.create("dic-v1", "cpu", cache_dir=None)
    method, why = comp.method("bicubic", scale)
    assert why is None
    batch = comp.batch(method, ids, hr, scale)
    lr = np.stack([_pil(h, 128 // scale) for h in hr])
    up = np.stack([_pil(x, 128) for x in lr])
    assert batch.ids == ids and batch.scale == scale and batch.hr_size == 128 and batch.priors == {}
    np.testing.assert_array_equal((batch.lr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), lr)
    np.testing.assert_array_equal((batch.upsampled * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), up)
    assert methods.get("bicubic").name == "bicubic"


def test_cell_scorer_scores_a_cell_without_a_runner(demo_hr, tmp_path):
    ids, hr = demo_hr
    comp = Components.create("dic-v1", "cpu", cache_dir=None)
    metrics, skipped = comp.metrics(["psnr"])
    assert skipped == [] and [m.name for m in metrics] == ["psnr"]
    scorer = CellScorer(comp, metrics, {"seed": 0})
    method, _ = comp.method("bicubic", 8)
    cell = Cell("demo", 8, "bicubic", method, srdir=tmp_path / "sr")
    (tmp_path / "sr").mkdir()
    scored = scorer.score_cell(open_dataset("demo"), ids, cell, batch_size=3)
    assert [r["image_id"] for r in scored.rows] == ids and scored.failures == [] and scored.notes == []
    for r, h in zip(scored.rows, hr):
        sr = _pil(_pil(h, 16), 128)
        ref = peak_signal_noise_ratio(_y(h)[8:-8, 8:-8], _y(sr)[8:-8, 8:-8], data_range=255)
        assert r["status"] == "ok" and r["psnr"] == pytest.approx(ref, abs=1e-10)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sr" / f"{r['image_id']}.png")), sr)
    import pandas as pd

    summaries, notes = scorer.summarize(pd.DataFrame(scored.rows), cell)
    assert notes == [] and summaries["psnr"]["metric"] == "psnr" and summaries["psnr"]["higher_is_better"]
    assert summaries["psnr"]["value"] == pytest.approx(np.mean([r["psnr"] for r in scored.rows]))


def test_a_failing_metric_costs_its_columns_not_the_rows(demo_hr):
    from fsrbench.api import Metric

    class Broken(Metric):
        name = "broken"

        def per_image(self, sr, hr, ctx):
            raise RuntimeError("boom")

    ids, hr = demo_hr
    comp = Components.create("dic-v1", "cpu", cache_dir=None)
    psnr, _ = comp.metrics(["psnr"])
    scorer = CellScorer(comp, [Broken(protocol=comp.protocol)] + psnr)
    values, notes = scorer.per_image(hr, hr, scorer.context("demo", 4, "x"))
    assert notes == ["broken: RuntimeError: boom"]
    assert [set(v) for v in values] == [{"psnr"}] * len(ids) and all(v["psnr"] == np.inf for v in values)
