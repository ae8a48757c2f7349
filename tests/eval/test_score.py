"""``fsrbench score --sr DIR --hr DIR`` and ``fsrbench.score``: SR images made elsewhere get every metric, the same
tables, summaries, resume and leaderboard as ``fsrbench run`` — and the very numbers ``run`` computed for the same
SR images (its saved PNGs), bit for bit."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fsrbench
from fsrbench.cli import main as cli_main

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
FACES = REPO.parent / "shared" / "data" / "faces-dev"


def _hr_folder(dst: Path, n: int) -> Path:
    """n 128x128 faces (real ones from ../shared/data when present, with their labels.csv; else synthetic)."""
    dst.mkdir(parents=True)
    files = sorted(FACES.glob("*.png"))[:n] if FACES.is_dir() else []
    for f in files:
        shutil.copy(f, dst / f.name)
    if files and (FACES / "labels.csv").is_file():
        lines = (FACES / "labels.csv").read_text().splitlines()
        keep = {f.name for f in files}
        (dst / "labels.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in keep]) + "\n")
    rng = np.random.default_rng(0)
    for k in range(len(files), n):
        yy, xx = np.mgrid[0:128, 0:128] / 128.0
        img = np.stack([np.sin(5 * xx + k) * 0.5 + 0.5, yy, xx], -1) * 255 + rng.normal(0, 3, (128, 128, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(dst / f"face{k:02d}.png")
    return dst


def _table_text(path: Path) -> list[str]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.drop(columns=["dataset"]).to_csv(index=False).splitlines()


def test_score_reproduces_run_bit_for_bit(tmp_path, capsys, one_torch_thread):
    hr = _hr_folder(tmp_path / "hr", 5)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    run_out = tmp_path / "run"
    rc = cli_main(["run", "--methods", "bicubic", "--datasets", f"folder:{hr}", "--scales", "8", "--batch-size", "2",
                   "--out", str(run_out), "--no-progress", *cache])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    sr = next((run_out / "sr").glob("*/x8/bicubic"))
    score_out = tmp_path / "score"
    rc = cli_main(["score", "--sr", str(sr), "--hr", str(hr), "--scale", "8", "--name", "bicubic", "--batch-size", "2",
                   "--out", str(score_out), "--no-progress", *cache])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "## hr — x8 (N = 5)" in cap.out  # the leaderboard, as run prints it
    # every metric, per image and per cell, bit for bit (CSV and JSON keep the exact floats)
    assert _table_text(score_out / "per_image.csv") == _table_text(run_out / "per_image.csv")
    a = json.loads((run_out / "metrics.json").read_text())["cells"][0]
    b = json.loads((score_out / "metrics.json").read_text())["cells"][0]
    assert a["metrics"] == b["metrics"] and len(a["metrics"]) > 2
    assert (a["n_images"], a["n_failed"]) == (b["n_images"], b["n_failed"]) == (5, 0)
    assert (score_out / "leaderboard.md").is_file()
    # the same from Python, on the same results directory: the cell is reused (resume), the table is the same
    df = fsrbench.score(sr=str(sr), hr=str(hr), scale=8, name="bicubic", out=str(score_out), batch_size=2,
                        cache_dir=str(tmp_path / "cache"))
    ref = pd.read_csv(run_out / "per_image.csv")
    for col in ("psnr", "ssim", "lpips"):
        assert df[col].tolist() == ref[col].tolist()
    assert df.attrs["out"] == str(score_out)


def test_score_pairs_by_file_name_and_reports_what_is_missing(tmp_path, capsys):
    hr = _hr_folder(tmp_path / "hr", 4)
    names = sorted(p.name for p in hr.glob("*.png"))
    sr = tmp_path / "sr"
    sr.mkdir()
    for n in names[:2]:  # a.png -> a.png (same name), b.png -> b.jpg.png style: stem b
        Image.open(hr / n).save(sr / n)
    Image.open(hr / names[2]).resize((64, 64)).save(sr / names[2])  # wrong size
    Image.open(hr / names[0]).save(sr / "stray.png")  # matches no HR
    out = tmp_path / "out"
    rc = cli_main(["score", "--sr", str(sr), "--hr", str(hr), "--scale", "4", "--metrics", "psnr", "--name", "mine",
                   "--out", str(out), "--no-progress", "--no-leaderboard"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.out == ""  # --no-leaderboard: nothing printed, the file is written
    assert (out / "leaderboard.md").is_file()
    assert "1 of 4 HR images have no SR image" in cap.err and "stray.png" in cap.err
    df = pd.read_csv(out / "per_image.csv", keep_default_na=False)
    by = dict(zip(df["image_id"], zip(df["status"], df["error"])))
    assert by[names[0]][0] == "ok" and by[names[1]][0] == "ok"
    assert "64x64, expected 128x128" in by[names[2]][1]
    assert "no SR image" in by[names[3]][1]
    rc = cli_main(["score", "--sr", str(tmp_path / "nope"), "--hr", str(hr), "--scale", "4"])
    assert rc == 2 and "--sr" in capsys.readouterr().err


def test_score_recomputes_when_an_sr_file_changes(tmp_path, capsys):
    hr = _hr_folder(tmp_path / "hr", 2)
    sr = tmp_path / "sr"
    shutil.copytree(hr, sr)
    args = ["score", "--sr", str(sr), "--hr", str(hr), "--scale", "8", "--metrics", "psnr", "--out", str(tmp_path / "o"),
            "--no-progress", "--no-leaderboard"]
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main(args) == 0
    assert "done already" in capsys.readouterr().err
    f = sorted(sr.glob("*.png"))[0]
    a = np.asarray(Image.open(f).convert("RGB")).copy()
    a[0, 0] = 255 - a[0, 0]
    Image.fromarray(a).save(f)
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    assert "its inputs changed (weights or SR files sha256" in err
