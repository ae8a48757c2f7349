"""``scripts/gpu_check.sh --dry-run``: the GPU check's code paths on CPU at the tiny presets — a method trains
under bf16 autocast with the fp16 range guard and under torchrun with 2 gloo processes, its checkpoint
evaluates, and 2-process SRCNN equals one process. The fast test runs SRCNN only (CI); the slow one every
trainable method."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import builtin_trainable_methods

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def test_dry_run_srcnn_single_ddp_and_eval(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--methods", "srcnn", "--steps", "1", "--out",
                        str(tmp_path)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(x["method"], x["mode"]) for x in rows] == [("srcnn", "bf16+fp16-range"), ("srcnn", "ddp2-fp32")]
    single, ddp = rows
    assert single["ok"] and single["losses_finite"] and single["fp16_overflows"] == [], single
    assert single["eval_psnr"] is not None and 3 < single["eval_psnr"] < 60, single
    assert single["steps_per_s"] > 0 and "peak_mem_gib" not in single  # no CUDA: no memory column
    assert ddp["ok"] and ddp["ddp_max_abs_diff"] < 1e-5, ddp
    assert ddp["eval_psnr"] is not None and 3 < ddp["eval_psnr"] < 60, ddp
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("GPU check (dry run, CPU, tiny presets)") and table in r.stdout
    assert "| srcnn | bf16+fp16-range | yes |" in table and "| srcnn | ddp2-fp32 | yes |" in table


@pytest.mark.slow
def test_dry_run_trains_every_method_single_and_under_torchrun(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--steps", "1", "--out", str(tmp_path)], cwd=REPO,
                       env=_env(), capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    trainable = builtin_trainable_methods()  # the script runs in a fresh process: only the built-ins
    single = {x["method"]: x for x in rows if x["mode"] == "bf16+fp16-range"}
    ddp = {x["method"]: x for x in rows if x["mode"] == "ddp2-fp32"}
    assert set(single) == trainable and set(ddp) == trainable
    for name, row in single.items():
        assert row["ok"] and row["losses_finite"] and row["fp16_overflows"] == [], row
        assert row["eval_psnr"] is not None and 3 < row["eval_psnr"] < 60, row
    assert all(row["ok"] for row in ddp.values()), [r for r in ddp.values() if not r["ok"]]
    assert all(row["eval_psnr"] is not None for row in ddp.values()), ddp
    assert ddp["srcnn"]["ddp_max_abs_diff"] < 1e-5
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| method | mode | ok | steps/s | peak GiB |" in table and table in r.stdout


def test_without_a_gpu_the_script_says_to_use_the_dry_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    r = subprocess.run(["bash", str(SCRIPT), "--methods", "srcnn"], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "--dry-run" in r.stderr and "Traceback" not in r.stderr
