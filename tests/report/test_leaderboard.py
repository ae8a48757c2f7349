"""Leaderboard tables: ranks, significance marks, formats, cost counting, reported-vs-reproduced, committed boards."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fsrbench.leaderboard import build_boards, leaderboard, mean_ranks, render_compare_reported, render_csv, render_latex, render_markdown
from fsrbench.report.profile import count_macs, measure

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/


def _summary(v, lo, hi, n=20, hib=True):
    return {"value": v, "ci_low": lo, "ci_high": hi, "n": n, "n_missing": 0, "higher_is_better": hib}


def _synthetic(n=20, seed=0):
    """Three methods on the same n images: 'good' > 'close' (tiny paired gap, noisy) and 'bad' (clearly worse)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(25, 2, n)
    noise = rng.normal(0, 0.3, n)
    noise -= noise.mean()  # 'close' is 0.02 dB below 'good' on average, with 0.3 dB paired noise
    vals = {"good": base + 1.0, "close": base + 0.98 + noise,
            "bad": base - 1.0 + rng.normal(0, 0.1, n)}
    lp = {"good": np.full(n, 0.2), "close": np.full(n, 0.2), "bad": np.full(n, 0.1)}  # lower is better
    rows, cells = [], []
    for m in vals:
        for i in range(n):
            rows.append({"dataset": "celeba", "scale": 8, "method": m, "image_id": f"img{i}", "status": "ok",
                         "psnr": vals[m][i], "lpips": lp[m][i]})
        cells.append({"dataset": "celeba", "scale": 8, "method": m, "n_images": n, "n_failed": 1 if m == "bad" else 0,
                      "method_info": {"params": 1000}, "notes": [],
                      "metrics": {"psnr": _summary(float(vals[m].mean()), float(vals[m].mean()) - 0.5,
                                                   float(vals[m].mean()) + 0.5),
                                  "lpips": _summary(float(lp[m].mean()), float(lp[m].mean()), float(lp[m].mean()), hib=False)}})
    doc = {"protocol": {"id": "dic-v1", "version": 1, "sha256": "ab" * 32}, "cells": cells, "skipped": [],
           "skipped_metrics": []}
    return doc, pd.DataFrame(rows)


def test_mean_ranks_hand_computed():
    vals = {"psnr": [("a", 30.0), ("b", 28.0), ("c", 28.0)], "lpips": [("a", 0.3), ("b", 0.1), ("c", 0.2)],
            "ssim": [("a", 0.9)]}  # one method only: left out
    r = mean_ranks(vals, {"psnr": True, "lpips": False, "ssim": True})
    # psnr: a=1, b=c=2.5 ; lpips (lower better): b=1, c=2, a=3
    assert r == pytest.approx({"a": 2.0, "b": 1.75, "c": 2.25})


def test_best_bold_significance_and_failed_last_column():
    doc, pi = _synthetic()
    (b,) = build_boards(doc, pi)
    assert b.is_best("good", "psnr") and not b.is_best("bad", "psnr")
    assert b.worse("bad", "psnr")  # 2 dB below on every image
    assert not b.worse("close", "psnr")  # paired noise of 0.3 dB, mean gap ~0: not significant
    assert b.is_best("bad", "lpips")  # direction respected: lower is better
    assert b.worse("good", "lpips") and b.worse("close", "lpips")  # constant differences -> CI excludes 0
    md = render_markdown(doc, "t", per_image=pi)
    bad_row = md.split("| bad")[1].split("\n")[0]
    assert bad_row.rstrip(" |").endswith("| 1") and "†" in bad_row
    assert "**" in md.split("| good")[1].split("\n")[0]
    # no per-image table -> no marks, same values
    md2 = render_markdown(doc, "t")
    assert "†" not in md2.split("## ")[1] and "| bad" in md2


def test_csv_and_latex_formats():
    doc, pi = _synthetic()
    boards = build_boards(doc, pi)
    rows = list(csv.DictReader(io.StringIO(render_csv(boards))))
    assert len(rows) == 6
    got = {(r["method"], r["summary"]): float(r["value"]) for r in rows}
    for c in doc["cells"]:
        for k, s in c["metrics"].items():
            assert got[(c["method"], k)] == pytest.approx(s["value"])
    bad = [r for r in rows if r["method"] == "bad" and r["summary"] == "psnr"][0]
    assert bad["worse_than_best"] == "True" and bad["params"] == "1000" and bad["n_failed"] == "1"
    tex = render_latex(boards, doc)
    assert "\\toprule" in tex and "\\textbf{" in tex and "$^\\dagger$" in tex and tex.count("\\\\") >= 4


def test_compare_reported_puts_paper_values_beside_reproduced():
    doc, pi = _synthetic()
    doc["cells"][0]["method"] = "bicubic"
    pi.loc[pi["method"] == "good", "method"] = "bicubic"
    text = render_compare_reported(build_boards(doc, pi), doc)
    row = [ln for ln in text.splitlines() if ln.startswith("| bicubic") and "psnr" in ln][0]
    assert "23.58" in row and "23.46" in row  # AffectSRNet Table II and W-Net Table 1, CelebA x8 bicubic
    assert "AffectSRNet Table II" in text and "DDAMFN" in text  # protocol differences stated
    assert "Different images" not in text
    other = render_compare_reported(build_boards(doc, pi), doc, reported_dataset="Helen")
    assert "Different images" in other and "23.88" in other  # celeba run vs published Helen: warned
    doc["cells"][0]["dataset"] = "folder:/x"
    assert "No published numbers" in render_compare_reported(build_boards(doc, None), doc)


def test_count_macs_hand_computed():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                          nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    x = torch.zeros(1, 3, 16, 16)
    macs = count_macs(model, lambda: model(x))
    expect = (16 * 16 * 8 * 3 * 9          # conv: out pixels x out ch x in ch x k
              + 16 * 16 * 8 * 4 * 16       # conv-transpose: in elements x out ch x k
              + 32 * 32 * 4 * 2 * 9        # grouped conv: in/groups = 2
              + 4096 * 10)                 # linear
    assert macs == expect


class _TinyMethod:
    def __init__(self):
        self.model = nn.Conv2d(3, 3, 3, padding=1)

    def super_resolve(self, batch):
        return self.model(batch)


def test_measure_on_cpu():
    m = _TinyMethod()
    res = measure(m, torch.zeros(1, 3, 128, 128), "cpu", warmup=1, repeats=3)
    assert res["params"] == 3 * 3 * 9 + 3
    assert res["gmacs"] == pytest.approx(128 * 128 * 3 * 3 * 9 / 1e9)
    assert res["latency_ms"] > 0 and res["peak_mem_mb"] >= 0


def test_committed_boards_regenerate_exactly():
    from fsrbench.report.boards import regenerate

    problems = regenerate(REPO / "leaderboards", check=True)
    assert problems == [], "\n".join(problems)


def test_cli_formats_on_stored_results(tmp_path, capsys):
    import argparse

    from fsrbench.commands.leaderboard import main

    d = REPO / "leaderboards" / "results" / "demo"
    out = tmp_path / "b.csv"
    ns = argparse.Namespace(run_dir=str(d), output=str(out), title=None, fmt="csv", compare_reported=False,
                            reported_dataset=None, no_significance=True, profile=False, device="cpu", repeats=1)
    assert main(ns) == 0
    df = pd.read_csv(out)
    assert set(df["method"]) == {"bicubic", "nearest", "hr-oracle"} and set(df["scale"]) == {4, 8}
    md = leaderboard(d)
    assert "## demo — x4" in md and "latency ms" in md


def test_vectorised_ecm_bootstrap_equals_the_metric_per_resample():
    from fsrbench import stats
    from fsrbench.metrics.ecm import _ecm_value, ecm_resampled

    rng = np.random.default_rng(3)
    n, c = 40, 7
    p_hr = rng.dirichlet(np.ones(c) * 0.5, n)
    p_sr = rng.dirichlet(np.ones(c) * 0.5, n)
    p_hr[0, :] = 0.0
    p_hr[0, 0] = 1.0  # a probability of exactly 1.0 sits in numpy's closed last bin
    idx = stats.resample_indices(n, 25, 0)
    want = [_ecm_value(p_hr[i], p_sr[i]) for i in idx]
    assert ecm_resampled(p_hr, p_sr, idx) == pytest.approx(want, rel=1e-9, abs=1e-9)
    q_sr = rng.dirichlet(np.ones(c), n)
    fast = stats.paired_bootstrap_set(_ecm_value, (p_hr, p_sr), (p_hr, q_sr), n_boot=200, seed=0,
                                      resampled=ecm_resampled)
    slow = stats.paired_bootstrap_set(lambda p, q: _ecm_value(p, q), (p_hr, p_sr), (p_hr, q_sr), n_boot=200, seed=0)
    for k in ("effect", "ci_low", "ci_high", "p_bootstrap"):
        assert fast[k] == pytest.approx(slow[k], rel=1e-9, abs=1e-9), k
