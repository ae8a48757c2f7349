"""End-to-end runner behaviour on the embedded demo set (PSNR/SSIM only, to stay fast)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fsrbench
from fsrbench.eval.runner import RunSpec, run
from fsrbench.leaderboard import leaderboard

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PLUGINS = REPO / "tests" / "fixture_plugins" / "misbehaving.py"
FAST = ["psnr", "ssim"]


def _spec(out, **kw):
    base = dict(methods=["bicubic", "hr-oracle"], datasets=["demo"], scales=[4, 8], metrics=FAST, out=str(out),
                progress=False)
    base.update(kw)
    return RunSpec(**base)


def test_demo_oracle_is_perfect_and_x4_beats_x8(tmp_path):
    res = run(_spec(tmp_path / "r"), log=lambda m: None)
    cells = {(c["method"], c["scale"]): c["metrics"] for c in res.metrics["cells"]}
    for s in (4, 8):
        assert cells[("hr-oracle", s)]["psnr"]["value"] == float("inf")
        assert cells[("hr-oracle", s)]["ssim"]["value"] == 1.0
    assert cells[("bicubic", 4)]["psnr"]["value"] > cells[("bicubic", 8)]["psnr"]["value"] + 1
    assert cells[("bicubic", 4)]["ssim"]["value"] > cells[("bicubic", 8)]["ssim"]["value"]
    md = leaderboard(tmp_path / "r")
    assert "## demo — x4" in md and "psnr ↑" in md and "| hr-oracle | ∞" in md
    run_json = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run_json["protocol"]["id"] == "dic-v1" and len(run_json["protocol"]["sha256"]) == 64
    assert "torch" in run_json["versions"]
    df = pd.read_csv(tmp_path / "r" / "per_image.csv")
    assert len(df) == 4 * 16 and set(df["status"]) == {"ok"}


def test_rerun_reuses_finished_cells_and_force_recomputes(tmp_path):
    r1 = run(_spec(tmp_path / "r"), log=lambda m: None)
    assert len(r1.computed) == 4
    r2 = run(_spec(tmp_path / "r"), log=lambda m: None)
    assert r2.computed == [] and len(r2.cached) == 4
    r3 = run(_spec(tmp_path / "r", force=True, methods=["bicubic"]), log=lambda m: None)
    assert len(r3.computed) == 2
    # changing the metric set changes the cell key -> recomputed, not silently reused
    r4 = run(_spec(tmp_path / "r", methods=["bicubic"], metrics=["psnr"]), log=lambda m: None)
    assert len(r4.computed) == 2


def test_same_command_twice_gives_identical_bytes(tmp_path):
    for d in ("a", "b"):
        run(_spec(tmp_path / d, methods=["bicubic"]), log=lambda m: None)
    for f in ("per_image.csv", "metrics.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_failures_are_recorded_per_image_and_the_run_goes_on(tmp_path):
    res = run(_spec(tmp_path / "r", methods=["flaky", "noweights", "brokensetup", "bicubic"], scales=[4],
                    plugins=[f"{PLUGINS}:Flaky", f"{PLUGINS}:NoWeights", f"{PLUGINS}:BrokenSetup"], batch_size=4),
              log=lambda m: None)
    df = res.per_image
    flaky = df[df["method"] == "flaky"].set_index("image_id")
    assert flaky.loc["astronaut_m150_flip", "status"] == "failed"
    assert "NaN" in flaky.loc["astronaut_m150_flip", "error"]
    assert "shape" in flaky.loc["astronaut_rot+6", "error"]
    assert "boom" in flaky.loc["astronaut_rot-6", "error"]
    ok = flaky[flaky["status"] == "ok"]
    assert len(ok) == 16 - 6 - 2 - 2 and ok["psnr"].notna().all()
    assert ok["note"].str.contains("outside").all()  # clipped, noted
    assert len(df[df["method"] == "bicubic"]) == 16
    reasons = {s["method"]: s["reason"] for s in res.skipped}
    assert "fsrbench train noweights" in reasons["noweights"]
    assert "ZeroDivisionError" in reasons["brokensetup"]
    md = leaderboard(tmp_path / "r")
    assert "Not evaluated:" in md and "noweights" in md
    flaky_row = md.split("| flaky")[1].split("\n")[0]
    assert flaky_row.rstrip(" |").endswith("| 10")  # failure count shown beside the metrics


def test_example_plugin_round_trip_via_cli(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "fsrbench", "run", "--plugin", f"{REPO}/docs/examples/nearest_plugin.py:Nearest",
           "--methods", "nearest,bicubic", "--scales", "8", "--metrics", "psnr,ssim", "--out", str(out),
           "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "| nearest" in p.stdout
    cells = {c["method"]: c for c in json.loads((out / "metrics.json").read_text())["cells"]}
    assert cells["bicubic"]["metrics"]["psnr"]["value"] > cells["nearest"]["metrics"]["psnr"]["value"]


def test_unknown_method_cli_error_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "fsrbench", "run", "--methods", "bicubik", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Did you mean 'bicubic'" in p.stderr and "Traceback" not in p.stderr


def test_kill_midway_then_resume_does_not_recompute_finished_cells(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "fsrbench", "run", "--plugin", f"{PLUGINS}:Slow", "--methods", "bicubic,slow",
           "--scales", "4,8", "--metrics", "psnr,ssim", "--out", str(out), "--batch-size", "2", "--no-progress",
           "--no-leaderboard"]
    env = dict(os.environ, FSRBENCH_TEST_SLEEP="0.3")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "cells" / "demo" / "x4" / "bicubic" / "summary.json").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # now inside the slow cell
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cells = sorted(p.parent.name for p in (out / "cells").glob("*/x*/*/summary.json"))
    assert "bicubic" in cells and len(cells) < 4
    for d in (out / "cells").glob("*/x*/*"):  # every visible cell is complete
        assert (d / "summary.json").is_file() and (d / "per_image.csv").is_file()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(env, FSRBENCH_TEST_SLEEP="0"), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "done already: bicubic x4 on demo" in p.stderr
    final = pd.read_csv(out / "per_image.csv")
    clean = run(_spec(tmp_path / "clean", methods=["bicubic", "slow"], plugins=[f"{PLUGINS}:Slow"], batch_size=2),
                log=lambda m: None)
    pd.testing.assert_frame_equal(final, pd.read_csv(clean.out / "per_image.csv"))
    assert not list(out.glob(".cell-*"))


def test_second_concurrent_run_is_refused(tmp_path):
    from fsrbench.results import run_lock

    out = tmp_path / "r"
    with run_lock(out):
        with pytest.raises(ValueError, match="another fsrbench run"):
            run(_spec(out), log=lambda m: None)


def test_python_api_evaluate_returns_per_image_dataframe(tmp_path):
    df = fsrbench.evaluate(methods=["bicubic"], datasets=["demo"], scales=[8], metrics=FAST, out=str(tmp_path / "r"))
    assert list(df["method"].unique()) == ["bicubic"] and len(df) == 16
    assert np.isfinite(df["psnr"]).all()
    assert df.attrs["metrics"]["cells"][0]["metrics"]["psnr"]["n"] == 16


def test_folder_dataset_with_labels(tmp_path):
    from PIL import Image

    d = tmp_path / "faces"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 150, 3), dtype=np.uint8)).save(d / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(d / "b.png")
    (d / "c.png").write_text("not an image")
    (d / "labels.csv").write_text("filename,emotion\na.jpg,happiness\n")
    ds = fsrbench.get_dataset(f"folder:{d}")
    assert ds.ids() == ["a.jpg", "b.png", "c.png"]
    s = ds.load("a.jpg")
    assert s.hr.shape == (128, 128, 3) and s.meta["emotion"] == "happiness"
    res = run(_spec(tmp_path / "r", datasets=[f"folder:{d}"], methods=["bicubic"], scales=[4]), log=lambda m: None)
    assert res.per_image.set_index("image_id").loc["c.png", "status"] == "failed"
    assert len(res.failures) == 1 and "c.png" in res.failures[0]["reason"]


def test_amp_inference_is_keyed_separately_and_close_to_float32(tmp_path):
    """--amp bf16 (CPU autocast) runs the method under autocast; its cells never reuse float32 results."""
    plug = [f"{PLUGINS.parent.parent / 'plugins' / 'tiny_method.py'}:TinySR"]
    import torch

    from tests.plugins.tiny_method import TinyNet
    torch.manual_seed(0)
    net = TinyNet(8, 0.1)
    from safetensors.torch import save_file

    wpath = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(wpath))
    kw = dict(methods=["tiny-test"], plugins=plug, weights={"tiny-test": str(wpath)}, scales=[4])
    r32 = run(_spec(tmp_path / "r", **kw), log=lambda m: None)
    rbf = run(_spec(tmp_path / "r", amp="bf16", **kw), log=lambda m: None)
    assert len(rbf.computed) == 1 and rbf.cached == []  # not reused from the float32 cell
    a = r32.per_image.set_index("image_id")["psnr"]
    b = rbf.per_image.set_index("image_id")["psnr"]
    assert (a != b).any()  # bf16 really ran (different rounding) ...
    assert np.allclose(a, b, atol=0.5)  # ... and stays close to float32
    summary = json.loads(next((tmp_path / "r").rglob("summary.json")).read_text())
    assert summary["amp"] == "bf16"
    assert "autocast bf16" in leaderboard(tmp_path / "r")
