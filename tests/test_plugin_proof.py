"""Proof of issue 23 (phase B): a new metric written as ONE module (docs/examples/ms_ssim_plugin.py) and a new FER
model written as ONE module (docs/examples/fer_plugin.py) reach the main table, the mean rank, the significance
marks and the stored boards, with no other file of fsrbench naming them."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fsrbench import registry as reg
from fsrbench import stats
from fsrbench.eval.runner import RunSpec, run
from fsrbench.registry import import_target
from fsrbench.report.boards import render_stored, store_results
from fsrbench.report.leaderboard import build_boards, leaderboard, render_markdown
from fsrbench.results import load_run

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
MS_SSIM = str(REPO / "docs" / "examples" / "ms_ssim_plugin.py") + ":MSSSIM"
FER = str(REPO / "docs" / "examples" / "fer_plugin.py") + ":ColourFER"
NEAREST = str(REPO / "docs" / "examples" / "nearest_plugin.py") + ":Nearest"


def _named_in_package(word: str) -> list[str]:
    return [str(p) for p in (REPO / "fsrbench").rglob("*.py") if word in p.read_text()]


@pytest.fixture
def clean_registry():
    yield
    for kind, name in (("metrics", "ms_ssim"), ("fer", "colour-fer"), ("methods", "nearest")):
        if name in reg.registry(kind):
            reg.registry(kind).unregister(name)


# ------------------------------------------------------------------------------------------------
# the MS-SSIM module against an independent implementation (piq)
# ------------------------------------------------------------------------------------------------
def _faces(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from fsrbench.data.demo import DemoDataset

    ds = DemoDataset()
    hr = np.stack([ds.load(i).hr for i in ds.ids()[:n]])
    rng = np.random.default_rng(0)
    sr = []
    for k, im in enumerate(hr):  # bicubic x4 round trips, some with noise: realistic SR-like errors
        lr = Image.fromarray(im).resize((32, 32), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
        x = np.asarray(lr, dtype=np.float64) + (rng.normal(0, 6, im.shape) if k % 2 else 0)
        sr.append(np.clip(np.round(x), 0, 255).astype(np.uint8))
    return np.stack(sr), hr


@pytest.mark.parametrize("protocol, scale", [("dic-v1", 4), ("dic-v1", 8), ("rgb-v1", 4)])
def test_ms_ssim_module_equals_piq(protocol, scale):
    import piq

    from fsrbench.api import CellContext
    from fsrbench.metrics.psnr_ssim import prepare
    from fsrbench.protocols import get_protocol

    cls = import_target(MS_SSIM)
    m = cls(protocol)
    sr, hr = _faces()
    got = m.per_image(sr, hr, CellContext("t", scale, "t", m.protocol))["ms_ssim"]
    p = get_protocol(protocol)
    x = torch.from_numpy(prepare(sr, p, scale) / 255.0)
    y = torch.from_numpy(prepare(hr, p, scale) / 255.0)
    want = piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none",
                                scale_weights=torch.tensor([0.0448, 0.2856, 0.3001, 0.2363], dtype=torch.float64))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
    assert m.per_image(hr, hr, CellContext("t", scale, "t", m.protocol))["ms_ssim"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# the metric plugin on the boards
# ------------------------------------------------------------------------------------------------
def _run(out: Path, metrics: list[str], plugins: list[str], **kw):
    spec = RunSpec(methods=["bicubic", "nearest", "hr-oracle"], datasets=["demo"], scales=[4], metrics=metrics,
                   plugins=plugins, out=str(out), cache_dir=str(out.parent / "cache"), progress=False,
                   save_sr=False, **kw)
    run(spec, log=lambda m: None)
    return load_run(out)


def test_a_metric_written_as_one_module_reaches_every_part_of_the_board(tmp_path, clean_registry):
    assert _named_in_package("ms_ssim") == []  # nothing in fsrbench knows it
    doc, per_image, _ = _run(tmp_path / "r", ["psnr", "ms_ssim"], [MS_SSIM, NEAREST])
    (b,) = build_boards(doc, per_image)
    # 1. main table
    assert b.headline == ["psnr", "ms_ssim"]
    md = leaderboard(tmp_path / "r")
    header = [ln for ln in md.splitlines() if ln.startswith("| method")][0]
    assert "ms_ssim ↑" in header and "ms_ssim" not in b.extra
    # 2. significance: the mark is the plugin's compare() = a paired test of its per-image column
    t = per_image[per_image["status"] == "ok"].set_index("image_id")
    near, bic = (t[t["method"] == m]["ms_ssim"] for m in ("nearest", "bicubic"))
    want = stats.paired_comparison(near.to_numpy(), bic.loc[near.index].to_numpy(), n_boot=1000, seed=0)
    got = b.sig[("nearest", "ms_ssim")]
    assert got["effect"] == pytest.approx(want["effect"]) and got["effect"] < 0
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((want["ci_low"], want["ci_high"]))
    assert got["significant"] and got["versus"] == "bicubic"
    nearest_row = [ln for ln in md.splitlines() if ln.startswith("| nearest")][0]
    col = [h.strip() for h in header.split("|")].index("ms_ssim ↑")
    assert nearest_row.split("|")[col].strip().endswith("†")
    # 3. mean rank: with nearest made best in PSNR, the plugin's column decides a tie (1.5 / 1.5)
    assert b.ranks == {"bicubic": 1.0, "nearest": 2.0}
    doc2 = copy.deepcopy(doc)
    for c in doc2["cells"]:
        if c["method"] == "nearest":
            c["metrics"]["psnr"]["value"] = 99.0
    (b2,) = build_boards(doc2, None)
    assert b2.ranks == {"bicubic": 1.5, "nearest": 1.5}
    # 4. stored boards keep its column and render the same board, with or without the plugin installed
    stored = store_results(tmp_path / "r", "proof", root=tmp_path / "lb")
    kept = pd.read_csv(stored / "per_image.csv.gz")
    assert "ms_ssim" in kept.columns
    assert render_stored(stored) == leaderboard(tmp_path / "r", title="proof")
    reg.metrics.unregister("ms_ssim")
    assert render_stored(stored) == leaderboard(tmp_path / "r", title="proof")


# ------------------------------------------------------------------------------------------------
# the FER plugin on the boards
# ------------------------------------------------------------------------------------------------
def test_a_fer_model_written_as_one_module_reaches_every_part_of_the_board(tmp_path, clean_registry):
    from fsrbench.metrics.ecm import ecm, prob_columns

    assert _named_in_package("colour-fer") == [] and _named_in_package("ColourFER") == []
    doc, per_image, _ = _run(tmp_path / "r", ["psnr", "ecm", "expression"], [FER, NEAREST],
                             metric_options={"fer": "colour-fer"})
    (b,) = build_boards(doc, per_image)
    assert b.headline == ["psnr", "ecm", "expression_agreement"]  # main table
    for family in ("ecm", "expression"):  # the "Face models" line names the plugin's id
        assert any(x.startswith("fer_model: colour-fer-v1") for x in b.models[family])
    assert "- ecm: fer_model: colour-fer-v1" in leaderboard(tmp_path / "r")
    # ECM and its paired test recomputed by hand from the plugin's per-image probabilities
    t = per_image[per_image["status"] == "ok"].set_index("image_id")
    probs = {m: (t[t["method"] == m][list(prob_columns("hr")[:7])].to_numpy(float),
                 t[t["method"] == m][list(prob_columns("sr")[:7])].to_numpy(float)) for m in ("bicubic", "nearest")}
    for m in probs:
        assert b.cells[(m, "ecm")]["value"] == pytest.approx(ecm(*probs[m])["ecm"])
    worse, best = sorted(probs, key=lambda m: ecm(*probs[m])["ecm"], reverse=True)
    got = b.sig[(worse, "ecm")]
    assert got["versus"] == best
    assert got["effect"] == pytest.approx(ecm(*probs[worse])["ecm"] - ecm(*probs[best])["ecm"])
    slow = stats.paired_bootstrap_set(lambda p, q: ecm(p, q)["ecm"], probs[worse], probs[best], n_boot=1000, seed=0)
    assert (got["ci_low"], got["ci_high"], got["p_bootstrap"]) == pytest.approx(
        (slow["ci_low"], slow["ci_high"], slow["p_bootstrap"]), rel=1e-9)
    # the mean rank counts ECM and expression agreement
    ranks = {m: [] for m in probs}
    for key in b.headline:
        vals = {m: b.cells[(m, key)]["value"] for m in probs}
        if len(set(vals.values())) == 1:
            for m in ranks:
                ranks[m].append(1.5)
            continue
        order = sorted(vals, key=vals.get, reverse=b.direction[key])
        for i, m in enumerate(order):
            ranks[m].append(i + 1.0)
    assert b.ranks == pytest.approx({m: float(np.mean(r)) for m, r in ranks.items()})
    # stored boards keep the FER outputs and render the same board, with or without the plugin installed
    stored = store_results(tmp_path / "r", "fer", root=tmp_path / "lb")
    kept = pd.read_csv(stored / "per_image.csv.gz")
    assert set(prob_columns("hr") + prob_columns("sr")) <= set(kept.columns) and "expr_agree" in kept.columns
    assert render_stored(stored) == leaderboard(tmp_path / "r", title="fer")
    reg.registry("fer").unregister("colour-fer")
    assert render_stored(stored) == leaderboard(tmp_path / "r", title="fer")


def test_an_unregistered_metric_is_described_from_its_stored_summaries():
    """A --plugin metric absent where the board is rendered: primary-flagged summaries are headline, a
    summary named like a per-image column is tested as that column's mean."""
    rng = np.random.default_rng(0)
    rows, cells = [], []
    for m, shift in (("a", 0.0), ("b", -0.5)):
        v = 10 + rng.normal(0, 1, 12) + shift
        rows += [{"dataset": "d", "scale": 4, "method": m, "image_id": f"i{k}", "status": "ok", "toy": v[k]}
                 for k in range(12)]
        cells.append({"dataset": "d", "scale": 4, "method": m, "n_images": 12, "n_failed": 0, "notes": [],
                      "metrics": {"toy": {"value": float(v.mean()), "ci_low": 0, "ci_high": 0, "n": 12,
                                          "metric": "toyfamily", "primary": True, "higher_is_better": True},
                                  "toy_extra": {"value": 1.0, "metric": "toyfamily", "primary": False}}})
    doc = {"protocol": {"id": "dic-v1"}, "cells": cells, "skipped": []}
    (b,) = build_boards(doc, pd.DataFrame(rows))
    assert b.headline == ["toy"] and b.extra == ["toy_extra"]
    a_, b_ = (pd.DataFrame(rows).query(f"method == '{m}'")["toy"].to_numpy() for m in ("a", "b"))
    want = stats.paired_comparison(b_, a_, n_boot=1000, seed=0)
    assert b.sig[("b", "toy")]["effect"] == pytest.approx(want["effect"])
    assert math.isfinite(b.sig[("b", "toy")]["ci_low"])
    assert "toy ↑" in render_markdown(doc, "t", per_image=pd.DataFrame(rows)).split("All other")[0]
