"""Multi-process training on CPU (torchrun, gloo, 2 processes) against one process with the same global batch.

* BatchNorm under DDP normalises over the global batch (``sync_batchnorm``, default on): after a few steps the
  2-process weights equal the 1-process weights within 1e-5 — and without it they do not (the control);
* SRCNN (no BatchNorm) likewise;
* DIC's DDP wrapper drops ``find_unused_parameters`` after its hourglass phases (re-wrapped mid-run).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
HERE = REPO / "tests"
DRIVER = str(HERE / "plugins" / "ddp_train.py")
TINY = HERE / "plugins" / "tiny_method.py"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from plugins.synthetic import write_images

    return write_images(tmp_path_factory.mktemp("ddp") / "imgs", n=20)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(HERE))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _launch(jobs: list[dict], procs: int, where: Path) -> None:
    spec = where / f"jobs-{procs}.json"
    spec.write_text(json.dumps(jobs))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] \
        if procs > 1 else [sys.executable]
    r = subprocess.run(launcher + [DRIVER, str(spec)], env=_env(), cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (card,) = [p for p in run.glob("step_*.card.json")][-1:]
    return load_file(str(run / json.loads(card.read_text())["weights"]))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


COMMON = ["steps=5", "batch_size=4", "val_every=0", "val_holdout=2", "val_images=2", "ckpt_every=0",
          "tensorboard=false", "num_workers=0", "log_every=1", "lr=0.01"]
BN = f"{TINY}:TinyBNSR"
# SGD: Adam turns gradients at rounding-noise level into full-size steps, so no two runs with different
# reduction orders could be compared at 1e-5
BN_SETS = COMMON + ["dropout=0.0", "width=8", "optimizer=sgd", "lr=0.05"]
SRCNN_SETS = COMMON + ["lr=1e-3"]
DIC_SETS = ["steps=4", "batch_size=2", "val_every=0", "val_holdout=2", "val_images=2", "ckpt_every=0",
            "features=8", "hg_features=16", "hg_depth=1", "num_steps=2", "groups=1", "fusion_blocks=1",
            "hg_pretrain_iterations=1", "hg_freeze_iterations=1", "tensorboard=false", "log_every=1"]


@pytest.fixture(scope="module")
def runs(images, tmp_path_factory) -> Path:
    """All runs of this module in two launches: 1 process, and torchrun with 2 processes."""
    root = tmp_path_factory.mktemp("ddp-runs")
    ds = f"folder:{images}"
    _launch([{"out": str(root / "bn-1"), "method": BN, "dataset": ds, "sets": BN_SETS},
             {"out": str(root / "srcnn-1"), "method": "srcnn", "dataset": ds, "sets": SRCNN_SETS}], 1, root)
    _launch([{"out": str(root / "bn-2"), "method": BN, "dataset": ds, "sets": BN_SETS},
             {"out": str(root / "bn-2-nosync"), "method": BN, "dataset": ds, "sets": BN_SETS + ["sync_batchnorm=false"]},
             {"out": str(root / "srcnn-2"), "method": "srcnn", "dataset": ds, "sets": SRCNN_SETS},
             {"out": str(root / "dic-2"), "method": "dic", "dataset": ds, "sets": DIC_SETS},
             {"kind": "global-batchnorm", "out": str(root / "gbn.pt")}], 2, root)
    return root


def test_batchnorm_model_under_ddp_equals_one_process(runs):
    one, two, nosync = (_weights(runs / d) for d in ("bn-1", "bn-2", "bn-2-nosync"))
    assert set(two) == set(one) and "body.1.running_mean" in two  # BatchNorm's keys are kept
    assert _max_diff(two, one) < 1e-5
    assert _max_diff(nosync, one) > 1e-4  # per-process statistics: the control that the test can fail
    run = json.loads((runs / "bn-2" / "run.json").read_text())
    assert run["world_size"] == 2 and run["sync_batchnorm_layers"] == 1


def test_srcnn_under_ddp_equals_one_process(runs):
    assert _max_diff(_weights(runs / "srcnn-2"), _weights(runs / "srcnn-1")) < 1e-5


def test_dic_drops_find_unused_parameters_after_its_phases(runs):
    """DIC asks DDP for find_unused_parameters only while the hourglass is pre-trained or frozen (steps 1-2
    here); the engine re-wraps it for step 3 on, and 2-process training still runs to the end."""
    from fsrbench.registry import instantiate, methods
    from fsrbench.train.logs import read_csv

    dic = instantiate(methods.get("dic"))
    model = dic.build_model(8, {"features": 8, "hg_features": 16, "hg_depth": 1, "num_steps": 2, "groups": 1,
                                "fusion_blocks": 1})
    cfg = {"hg_pretrain_iterations": 1, "hg_freeze_iterations": 1}
    for stored, want in ((1, True), (2, False)):
        model.train_step.fill_(stored)
        model.host_train_step = None
        assert dic.ddp_find_unused_parameters(model, cfg) is want
    run = json.loads((runs / "dic-2" / "run.json").read_text())
    assert run["ddp_find_unused_parameters"] == [[0, True], [2, False]]  # [step, setting] at each (re)wrap
    rows = read_csv(runs / "dic-2" / "train_log.csv")
    assert [float(r["phase"]) for r in rows] == [0.0, 1.0, 2.0, 2.0]
    assert all(np.isfinite(float(r["loss"])) for r in rows)



def test_global_batchnorm_is_exact_in_float64(runs):
    """The engine's CPU SyncBatchNorm: 2 processes x 2 samples give the 1-process gradients and running
    statistics of the 4 samples to float64 precision (so what remains in float32 runs is rounding)."""
    from plugins.gbn_worker import data, grads, make

    ref = grads(make(), *data())
    got = torch.load(runs / "gbn.pt", weights_only=True)
    assert got["n"] == 3  # BatchNorm2d, BatchNorm2d on 1x1 maps, BatchNorm1d
    for k, v in ref.items():
        assert float((v - got["grads"][k]).abs().max()) < 1e-12, k
