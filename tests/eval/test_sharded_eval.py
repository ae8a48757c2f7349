"""Sharded evaluation under torchrun (gloo on CPU) gives exactly the same results as one process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_ranks_equals_one_process(tmp_path, cache_dir):
    # float32 kernels (LPIPS, FER) sum in a thread-count-dependent order (~1e-7): compare at equal threads
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["--methods", "bicubic,hr-oracle", "--scales", "4,8", "--metrics", "psnr,ssim,lpips,ecm",
              "--batch-size", "3", "--no-progress", "--no-leaderboard"]
    one = subprocess.run([sys.executable, "-m", "fsrbench", "run", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "fsrbench", "run", *common, "--out", str(tmp_path / "two"),
                          "--workers", "2"], capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr
    for f in ("per_image.csv", "metrics.json"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    assert '"ranks": 2' in (tmp_path / "two" / "run.json").read_text()
    assert not (tmp_path / "two" / ".shards").exists()
