"""Boards (issue 25): rows by mean rank; a warning and a mark on cells evaluated on fewer images than their split
holds; a mark on cells made with weights trained on test images; "reported vs reproduced" marks every value that
is not comparable (partial split, test-split / reference / shorter-than-recipe weights)."""
from __future__ import annotations

import copy
import json

from fsrbench.cli import main as cli_main
from fsrbench.report.leaderboard import build_boards, render_boards_markdown, render_compare_reported, render_csv


def _cell(method: str, psnr: float, ssim: float, n: int = 10, n_split: int | None = 10, prov: dict | None = None,
          dataset: str = "celeba", scale: int = 8) -> dict:
    c = {"dataset": dataset, "scale": scale, "method": method, "n_images": n, "n_failed": 0,
         "metrics": {"psnr": {"value": psnr, "higher_is_better": True, "metric": "psnr", "primary": True},
                     "ssim": {"value": ssim, "higher_is_better": True, "metric": "ssim", "primary": True}}}
    if n_split is not None:
        c["n_split"] = n_split
    if prov is not None:
        c["weights_provenance"] = prov
    return c


def _doc(cells: list[dict]) -> dict:
    return {"protocol": {"id": "dic-v1", "version": 1, "sha256": "0" * 64}, "cells": cells, "skipped": [],
            "skipped_metrics": []}


def test_rows_are_sorted_by_mean_rank():
    # ranks by hand: zeta best in both (1, 1), alpha (3, 2) -> 2.5, mid (2, 3) -> 2.5, tie broken by name
    doc = _doc([_cell("alpha", 24.0, 0.80), _cell("mid", 25.0, 0.70), _cell("zeta", 27.0, 0.90),
                _cell("hr-oracle", float("inf"), 1.0)])
    b = build_boards(doc)[0]
    assert b.ranks == {"zeta": 1.0, "alpha": 2.5, "mid": 2.5}
    assert b.methods == ["zeta", "alpha", "mid", "hr-oracle"]  # the reference row last
    md = render_boards_markdown([b], doc)
    rows = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ") and "mean rank" not in ln]
    assert rows[:4] == ["zeta", "alpha", "mid", "hr-oracle"]


def test_partial_cells_get_a_warning_and_a_mark():
    doc = _doc([_cell("bicubic", 24.0, 0.8, n=20, n_split=1000), _cell("edsr", 25.0, 0.85, n=20, n_split=1000)])
    md = render_boards_markdown(build_boards(doc), doc)
    assert "**Warning: partial evaluation** — edsr, bicubic evaluated on 20 of the 1,000 images" in md
    assert "| 20 of 1000* " in md
    full = _doc([_cell("bicubic", 24.0, 0.8), _cell("edsr", 25.0, 0.85)])
    md = render_boards_markdown(build_boards(full), full)
    assert "partial" not in md and " of 10*" not in md
    csv_text = render_csv(build_boards(doc))
    header, first = csv_text.splitlines()[:2]
    row = dict(zip(header.split(","), first.split(",")))
    assert row["n_split"] == "1000" and row["partial"] == "True"


def test_limit_run_is_marked_partial_and_full_run_is_not(tmp_path, capsys):
    base = ["run", "--methods", "bicubic", "--datasets", "demo", "--scales", "8", "--metrics", "psnr",
            "--no-progress"]
    assert cli_main([*base, "--limit", "3", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "**Warning: partial evaluation** — bicubic evaluated on 3 of the 16 images" in out and "3 of 16*" in out
    assert cli_main([*base, "--out", str(tmp_path / "f")]) == 0
    assert "partial" not in capsys.readouterr().out


def test_weights_trained_on_test_images_are_marked():
    prov = {"comparable": False, "test_split": True, "split": "test",
            "why": "trained on celeba, a split that holds test images"}
    doc = _doc([_cell("bicubic", 24.0, 0.8), _cell("srcnn", 25.0, 0.85, prov=prov)])
    md = render_boards_markdown(build_boards(doc), doc)
    assert "| srcnn § " in md and "**Warning: weights trained on test images** — srcnn (§)" in md
    # results stored before the provenance field: the weight card alone says it
    old = _doc([_cell("bicubic", 24.0, 0.8), dict(_cell("srcnn", 25.0, 0.85),
                                                  weights={"kind": "best", "dataset": {"name": "celeba", "split": "test"}})])
    assert "| srcnn § " in render_boards_markdown(build_boards(old), old)


def test_reported_vs_reproduced_marks_what_is_not_comparable():
    smoke = {"comparable": False, "test_split": False, "split": "train",
             "why": "trained 20 steps x batch 4, less than the paper recipe's 150000 x 16 (a smoke or reduced run)"}
    ref = {"comparable": False, "test_split": False, "split": None,
           "why": "fsrbench CPU reference weights (a small budget on faces-train), not the paper's"}
    doc = _doc([_cell("bicubic", 23.5, 0.62, n=1000, n_split=1000), _cell("fsrnet", 10.99, 0.3, n=1000,
                                                                          n_split=1000, prov=smoke),
                _cell("edsr", 24.9, 0.7, n=1000, n_split=1000, prov=ref)])
    text = render_compare_reported(build_boards(doc), doc)
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ") and "psnr" in ln}
    assert "not comparable" not in rows["bicubic"]
    assert "10.99 (not comparable: weights trained shorter than the paper recipe)" in rows["fsrnet"]
    assert "(not comparable: fsrbench reference weights, not the paper's)" in rows["edsr"]
    part = copy.deepcopy(doc)
    for c in part["cells"]:
        c["n_images"] = 20
    text = render_compare_reported(build_boards(part), part)
    assert "**Not comparable: partial evaluation**" in text
    bic = next(ln for ln in text.splitlines() if ln.startswith("| bicubic") and "psnr" in ln)
    assert "(not comparable: partial split (20 of 1000 images))" in bic
    # another split of the published dataset: different images, said so
    other = _doc([_cell("bicubic", 23.5, 0.62, dataset="celeba@test-full", n=19962, n_split=19962)])
    assert "**Different images:** reproduced on the split 'test-full'" in render_compare_reported(
        build_boards(other), other)


def test_a_test_split_training_is_marked_on_the_board(tmp_path, capsys, monkeypatch, one_torch_thread):
    from layouts import make_celeba

    monkeypatch.delenv("FSRBENCH_CONFIG", raising=False)
    monkeypatch.setattr("fsrbench.data.config.DEFAULT_CONFIG", tmp_path / "none.yaml")
    root = tmp_path / "CelebA"
    make_celeba(root)
    out = tmp_path / "w"
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"celeba:{root}@test", "--allow-test-split",
                   "--out", str(out), "--preset", "smoke", "--set", "steps=1", "--set", "batch_size=2",
                   "--set", "val_holdout=1", "--set", "val_every=0", "--set", "tensorboard=false",
                   "--set", "num_workers=0", "--device", "cpu", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    rc = cli_main(["run", "--methods", "bicubic,srcnn", "--datasets", f"celeba:{root}", "--scales", "8",
                   "--metrics", "psnr", "--weights", f"srcnn={out}", "--out", str(tmp_path / "r"), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "| srcnn § " in cap.out and "**Warning: weights trained on test images** — srcnn" in cap.out
    cell = next(c for c in json.loads((tmp_path / "r" / "metrics.json").read_text())["cells"] if c["method"] == "srcnn")
    assert cell["weights_provenance"]["test_split"] is True and cell["weights_provenance"]["comparable"] is False
