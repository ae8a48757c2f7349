"""Attacks on the runner: kills at several points, bad inputs, failing plugins, unwritable output, unsafe YAML.

See docs/reliability.md for the guarantees these tests protect.
"""
from __future__ import annotations

import errno
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
from PIL import Image

from fsrbench import results as results_mod
from fsrbench.eval.runner import RunSpec, run

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PLUGINS = REPO / "tests" / "fixture_plugins" / "misbehaving.py"


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fsrbench", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def _assert_results_dir_consistent(out: Path) -> None:
    """Every visible cell is complete and parseable; no temporary file is visible outside dot-names."""
    for d in (out / "cells").glob("*/x*/*"):
        summ = json.loads((d / "summary.json").read_text())
        table = pd.read_csv(d / "per_image.csv")
        assert len(table) == summ["n_images"]
    for f in ("per_image.csv", "metrics.json"):
        if (out / f).exists():
            (json.loads if f.endswith("json") else lambda t: t)((out / f).read_text())
    for p in out.rglob("*"):
        assert not p.name.endswith(".tmp") or p.name.startswith("."), p


KILL_POINTS = ["sr_generation", "metric_computation", "cell_writing"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_any_point_then_rerun_equals_clean_run(tmp_path, point):
    out = tmp_path / "r"
    args = ["run", "--plugin", f"{PLUGINS}:Slow", "--plugin", f"{PLUGINS}:SlowMetric", "--methods", "bicubic,slow",
            "--scales", "8", "--metrics", "psnr,slowmae", "--out", str(out), "--batch-size", "4", "--no-progress",
            "--no-leaderboard"]
    env = dict(os.environ, FSRBENCH_TEST_SLEEP="0.4" if point == "sr_generation" else "0",
               FSRBENCH_TEST_METRIC_SLEEP="0.4" if point == "metric_computation" else "0.02")
    proc = subprocess.Popen([sys.executable, "-m", "fsrbench", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    sr_slow = out / "sr" / "demo" / "x8" / "slow"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if point == "cell_writing" and list(out.glob(".cell-*")):
            break
        if point != "cell_writing" and len(list(sr_slow.glob("*.png"))) >= 4:
            time.sleep(0.2)  # inside the next slow batch / the slow metric of this batch
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_results_dir_consistent(out)
    p = _cli(*args, env={"FSRBENCH_TEST_SLEEP": "0", "FSRBENCH_TEST_METRIC_SLEEP": "0"})
    assert p.returncode == 0, p.stderr
    _assert_results_dir_consistent(out)
    assert not list(out.glob(".cell-*")) and not list(out.rglob(".*.tmp"))
    clean = tmp_path / "clean"
    p = _cli(*[a if a != str(out) else str(clean) for a in args],
             env={"FSRBENCH_TEST_SLEEP": "0", "FSRBENCH_TEST_METRIC_SLEEP": "0"})
    assert p.returncode == 0, p.stderr
    assert (out / "per_image.csv").read_bytes() == (clean / "per_image.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()


def _bad_folder(d: Path) -> dict[str, str]:
    """Writes one file per bad-input case; returns {file: 'ok' | 'failed'} as the run must report it."""
    d.mkdir()
    rng = np.random.default_rng(0)
    face_like = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    expect = {}
    (d / "zero_byte.png").write_bytes(b"")
    expect["zero_byte.png"] = "failed"
    Image.fromarray(face_like).save(d / "full.png")
    (d / "truncated.png").write_bytes((d / "full.png").read_bytes()[:300])
    (d / "full.png").unlink()
    expect["truncated.png"] = "failed"
    Image.fromarray(face_like).save(d / "full.jpg", quality=90)
    (d / "truncated.jpg").write_bytes((d / "full.jpg").read_bytes()[:400])
    (d / "full.jpg").unlink()
    expect["truncated.jpg"] = "failed"
    (d / "text.png").write_text("I am a text file with a .png name")
    expect["text.png"] = "failed"
    Image.fromarray(face_like[..., 0], "L").save(d / "gray.png")
    Image.fromarray(np.dstack([face_like, np.full((128, 128), 200, np.uint8)]), "RGBA").save(d / "rgba.png")
    Image.fromarray((face_like[..., 0].astype(np.uint16) * 257)).save(d / "sixteen_bit.png")
    Image.fromarray(face_like).convert("P", palette=Image.ADAPTIVE).save(d / "palette.png")
    Image.fromarray(face_like[:8, :8]).save(d / "tiny_8x8.png")
    Image.fromarray(rng.integers(0, 255, (4000, 4000, 3), dtype=np.uint8)).save(d / "huge_4000.jpg", quality=50)
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(d / "all_black.png")
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(d / "noise_not_a_face.png")
    for f in ("gray.png", "rgba.png", "sixteen_bit.png", "palette.png", "tiny_8x8.png", "huge_4000.jpg",
              "all_black.png", "noise_not_a_face.png"):
        expect[f] = "ok"
    return expect


def test_bad_inputs_are_recorded_and_the_run_finishes(tmp_path):
    d = tmp_path / "bad"
    expect = _bad_folder(d)
    res = run(RunSpec(methods=["bicubic"], datasets=[f"folder:{d}"], scales=[4], metrics=["psnr", "ssim"],
                      out=str(tmp_path / "r"), progress=False), log=lambda m: None)
    t = res.per_image.set_index("image_id")
    assert dict(t["status"]) == expect
    for f, st in expect.items():
        if st == "failed":
            assert f in t.loc[f, "error"] and t.loc[f, "error"].startswith("data:")
    cell = res.metrics["cells"][0]
    assert cell["n_failed"] == 4 and cell["metrics"]["psnr"]["n"] == len(expect) - 4
    from fsrbench.leaderboard import leaderboard

    row = leaderboard(tmp_path / "r").split("| bicubic")[1].split("\n")[0]
    assert row.rstrip(" |").endswith("| 4")


def test_strict_mode_exit_status_and_listing(tmp_path):
    d = tmp_path / "bad"
    _bad_folder(d)
    common = ["run", "--methods", "bicubic", "--datasets", f"folder:{d}", "--scales", "4", "--metrics", "psnr",
              "--no-progress", "--no-leaderboard"]
    p = _cli(*common, "--out", str(tmp_path / "a"))
    assert p.returncode == 0, p.stderr
    p = _cli(*common, "--out", str(tmp_path / "b"), "--strict")
    assert p.returncode == 1
    assert "failed: bicubic x4" in p.stderr and "zero_byte.png" in p.stderr


def test_unimportable_plugin_is_reported_and_other_methods_run(tmp_path):
    p = _cli("run", "--plugin", f"{REPO}/tests/fixture_plugins/unimportable.py:Thing", "--methods", "Thing,bicubic",
             "--scales", "8", "--metrics", "psnr", "--out", str(tmp_path / "r"), "--no-progress")
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [c["method"] for c in doc["cells"]] == ["bicubic"]
    assert doc["skipped"][0]["method"] == "Thing" and "cannot be imported" in doc["skipped"][0]["reason"]
    assert "Thing" in p.stdout  # the leaderboard lists it as not evaluated


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    p = _cli("run", "--methods", "bicubic", "--out", str(blocker / "sub"), "--metrics", "psnr")
    assert p.returncode == 2 and "not writable" in p.stderr and "Traceback" not in p.stderr


def test_low_disk_space_is_refused_up_front(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(ValueError, match="MiB free"):
        run(RunSpec(methods=["bicubic"], metrics=["psnr"], out=str(tmp_path / "r"), progress=False),
            log=lambda m: None)


def test_disk_full_while_writing_leaves_no_half_written_results(tmp_path, monkeypatch):
    real = results_mod.write_csv_atomic
    calls = {"n": 0}

    def failing(path, df):
        calls["n"] += 1
        if calls["n"] == 2:  # the second cell's table
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, df)

    monkeypatch.setattr(results_mod, "write_csv_atomic", failing)
    out = tmp_path / "r"
    with pytest.raises(OSError):
        run(RunSpec(methods=["bicubic"], scales=[4, 8], metrics=["psnr"], out=str(out), progress=False),
            log=lambda m: None)
    cells = list((out / "cells").glob("*/x*/*"))
    assert len(cells) == 1 and (cells[0] / "summary.json").is_file()
    assert not list(out.glob(".cell-*"))
    monkeypatch.setattr(results_mod, "write_csv_atomic", real)
    res = run(RunSpec(methods=["bicubic"], scales=[4, 8], metrics=["psnr"], out=str(out), progress=False),
              log=lambda m: None)
    assert len(res.cached) == 1 and len(res.computed) == 1


def test_protocol_yaml_cannot_execute_code(tmp_path):
    from fsrbench.protocols import get_protocol

    marker = tmp_path / "pwned"
    p = tmp_path / "evil.yaml"
    p.write_text(f'id: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ValueError, match="evil.yaml"):
        get_protocol(str(p))
    assert not marker.exists()


class _Payload:
    """Pickling this object runs ``touch MARKER`` when unpickled by an unsafe loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_checkpoint_is_refused_and_never_runs(tmp_path):
    import pickle

    import torch

    from fsrbench.train.checkpoints import load_state

    marker = tmp_path / "pwned"
    evil = tmp_path / "state.pt"
    torch.save({"model": _Payload(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_state(evil)
    assert not marker.exists()
    # a pickled "weights" file handed to evaluation: refused with the reason (an explicit --weights that cannot be
    # loaded is an error, issue 25), nothing runs
    out = tmp_path / "r"
    with pytest.raises(ValueError, match="--weights srcnn=.*not a safetensors file"):
        run(RunSpec(methods=["srcnn"], scales=[8], metrics=["psnr"], out=str(out), progress=False,
                    weights={"srcnn": str(evil)}), log=lambda m: None)
    assert not marker.exists()
