"""The FER card and the paired ECM ranking on boards (issue 22), on hand-built results."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrbench.leaderboard import build_boards, render_boards_markdown
from fsrbench.metrics.ecm import ecm, prob_columns
from fsrbench.report.fer_card import card_lines, ecm_paired, fer_card, labelled_accuracy

CLASSES = ["angry", "disgust", "fear"]
NEW_ID = "mx-1-hrbox-hog"


def _probs(n: int, seed: int, sharp: float) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(n, 3)) * sharp
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _table(method: str, p_hr: np.ndarray, p_sr: np.ndarray, labels=None, top_hr=None, scale: int = 4) -> pd.DataFrame:
    n = len(p_hr)
    d = {"dataset": "d", "scale": scale, "method": method, "image_id": [f"i{k}" for k in range(n)], "status": "ok"}
    for side, p in (("hr", p_hr), ("sr", p_sr)):
        for k, col in enumerate(prob_columns(side)):
            d[col] = p[:, k] if k < p.shape[1] else np.nan
    if labels is not None:
        d["expr_label"], d["expr_top_hr"] = labels, top_hr
    return pd.DataFrame(d)


def _cell(method: str, ecm_value: float, n: int, extra: dict | None = None, scale: int = 4) -> dict:
    s = {"value": ecm_value, "ci_low": ecm_value - 1, "ci_high": ecm_value + 1, "higher_is_better": False,
         "fer_model": NEW_ID, "fer_classes": CLASSES, "primary": True, **(extra or {})}
    return {"dataset": "d", "scale": scale, "method": method, "n_images": n, "n_failed": 0, "metrics": {"ecm": s}}


def test_labelled_accuracy_recall_and_confusion_by_hand() -> None:
    labels = np.array([0, 0, 1, 2, 2, np.nan])
    top = np.array([0, 1, 1, 2, 0, 2])
    p = _probs(6, 0, 1.0)
    t = pd.concat([_table("bicubic", p, p, labels, top), _table("x", p, p, labels, top)])
    lab = labelled_accuracy(t, "d", CLASSES)
    assert lab["n"] == 5 and lab["accuracy"] == pytest.approx(3 / 5)  # correct: i0, i2, i3
    assert lab["recall"] == {"angry": (0.5, 2), "disgust": (1.0, 1), "fear": (0.5, 2)}
    assert lab["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    sd = np.std([1, 0, 1, 1, 0], ddof=1) / math.sqrt(5)  # t-interval of a share, by hand
    assert lab["ci_low"] == pytest.approx(0.6 - 2.7764451051977987 * sd)
    assert labelled_accuracy(t.drop(columns=["expr_label"]), "d", CLASSES) is None


def test_card_of_old_results_names_the_old_input() -> None:
    rows = [_cell("bicubic", 1.0, 6, {"fer_model": "mx-1"})]
    card = fer_card(rows, None, "d")
    text = "\n".join(card_lines(card))
    assert "`mx-1`" in text and "no detector box; the FER input before issue 22" in text
    assert "not recorded" in text and "no emotion labels" in text
    assert card_lines(fer_card([{"dataset": "d", "scale": 4, "method": "m", "metrics": {}}], None, "d"))[0] \
        .startswith("FER card: no FER-based metric")
    new = fer_card([_cell("bicubic", 1.0, 6, {"fer_preprocessing": "dlib HOG box", "n_fer_fallback": 2})], None, "d")
    assert new["preprocessing"] == "dlib HOG box" and new["n_fallback"] == 2
    assert "(whole image used): 2 of 6" in "\n".join(card_lines(new))


def _paired_run(n: int = 40):
    p_hr = _probs(n, 1, 2.0)
    noise = {m: _probs(n, s, 2.0) for m, s in (("bicubic", 2), ("a", 3), ("b", 4))}
    sr = {"bicubic": 0.5 * p_hr + 0.5 * noise["bicubic"], "a": 0.9 * p_hr + 0.1 * noise["a"],
          "b": 0.2 * p_hr + 0.8 * noise["b"], "hr-oracle": p_hr}
    per_image = pd.concat([_table(m, p_hr, q) for m, q in sr.items()], ignore_index=True)
    return p_hr, sr, per_image


def test_ecm_paired_against_bicubic_by_hand() -> None:
    p_hr, sr, per_image = _paired_run()
    rows = [_cell(m, ecm(p_hr, q)["ecm"], len(p_hr)) for m, q in sr.items()]
    info = ecm_paired(rows, per_image, "d", 4, n_boot=200, seed=0)
    assert info["reference"] == "bicubic" and set(info["rows"]) == {"a", "b", "hr-oracle"}
    for m in ("a", "b"):
        assert info["rows"][m]["effect"] == pytest.approx(ecm(p_hr, sr[m])["ecm"] - ecm(p_hr, sr["bicubic"])["ecm"])
        assert info["rows"][m]["n"] == len(p_hr)
    # a method whose difference CI contains 0 is not rankable against the reference
    r = info["rows"]["a"]
    assert r["rankable"] == (r["ci_low"] > 0 or r["ci_high"] < 0)
    # without bicubic the best (lowest) ECM among non-reference methods is the reference
    no_bic = [c for c in rows if c["method"] != "bicubic"]
    assert ecm_paired(no_bic, per_image, "d", 4, n_boot=50)["reference"] == "a"
    assert ecm_paired(rows, per_image, "d", 4, reference="b", n_boot=50)["reference"] == "b"
    assert ecm_paired(rows, None, "d", 4) is None


def test_board_ranks_ecm_by_the_paired_difference_and_shows_it() -> None:
    p_hr, sr, per_image = _paired_run()
    # stored summaries that disagree with the per-image data: ranking must follow the paired differences
    fake = {"bicubic": 3.0, "a": 9.0, "b": 1.0, "hr-oracle": -13.8}
    rows = [_cell(m, fake[m], len(p_hr)) for m in sr]
    doc = {"protocol": {"id": "dic-v1", "version": 1, "sha256": "ab" * 32}, "cells": rows, "skipped": []}
    board = build_boards(doc, per_image, n_boot=200)[0]
    assert board.ecm_paired["reference"] == "bicubic"
    assert board.ranks == {"a": 1.0, "bicubic": 2.0, "b": 3.0}  # a is closest to HR in the per-image data
    assert build_boards(doc, None)[0].ranks == {"b": 1.0, "bicubic": 2.0, "a": 3.0}  # without it: the values
    md = render_boards_markdown([board], doc)
    assert "ECM paired against `bicubic`" in md and "ΔECM vs bicubic [95% CI]" in md
    assert "FER card (the expression model behind ecm and expression agreement):" in md and f"`{NEW_ID}`" in md


def test_leaderboard_cli_reference_option_and_report_plot(tmp_path: Path) -> None:
    from fsrbench.cli import main
    from fsrbench.report import plots

    p_hr, sr, per_image = _paired_run(20)
    labels = np.array([0, 1, 2, 0] * 5, dtype=float)
    per_image["expr_label"] = np.tile(labels, 4)
    per_image["expr_top_hr"] = np.tile(np.array([0, 1, 1, 0] * 5, dtype=float), 4)
    rows = [_cell(m, ecm(p_hr, q)["ecm"], 20) for m, q in sr.items()]
    doc = {"protocol": {"id": "dic-v1", "version": 1, "sha256": "ab" * 32}, "cells": rows, "skipped": []}
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(doc))
    per_image.to_csv(run / "per_image.csv", index=False)
    out = tmp_path / "lb.md"
    assert main(["leaderboard", str(run), "--ecm-reference", "b", "-o", str(out)]) == 0
    text = out.read_text()
    assert "ECM paired against `b`" in text
    assert "HR accuracy on the 20 emotion-labelled faces of this dataset: 0.750" in text
    assert "per-class recall (labelled faces): angry 1.00 (10), disgust 1.00 (5), fear 0.00 (5)" in text
    fig = plots.fer_confusion(per_image, doc, "d")
    assert fig is not None and "accuracy 0.750" in fig.axes[0].get_title()
    assert plots.fer_confusion(per_image.drop(columns=["expr_label"]), doc, "d") is None
