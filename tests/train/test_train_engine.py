"""The training engine end to end on CPU with a tiny test method (tests/plugins/tiny_method.py):
single process and torchrun/DDP (gloo) both checkpoint; SIGKILL + --resume reproduces the uninterrupted
loss sequence; evaluation finds the weights; NaN stops cleanly; AMP paths run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fsrbench.api import Batch, Unavailable
from fsrbench.registry import import_target
from fsrbench.train import checkpoints as ck
from fsrbench.train.config import config_hash, resolve_config
from fsrbench.train.logs import read_csv
from fsrbench.train.loop import TrainingDiverged, train

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
HERE = REPO / "tests"
PLUGIN = f"{HERE / 'plugins' / 'tiny_method.py'}:TinySR"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from plugins.synthetic import write_images

    return write_images(tmp_path_factory.mktemp("synthetic") / "imgs", n=24)


@pytest.fixture()
def tiny():
    return import_target(PLUGIN)()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fsrbench", "train", "tiny-test", "--plugin", PLUGIN, "--no-progress", *args]


def _losses(run_dir: Path) -> list[float]:
    return [float(r["loss"]) for r in read_csv(run_dir / "train_log.csv")]


@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    """One default tiny run (x8, 12 steps) shared by the checks below: (checkpoint root, run dir, config)."""
    torch.set_num_threads(1)
    tiny = import_target(PLUGIN)()
    cfg = resolve_config(tiny, "default")
    root = tmp_path_factory.mktemp("ckpts")
    res = train(tiny, 8, f"folder:{images}", config=cfg, device="cpu", out=root / "tiny-test-x8", progress=False)
    assert res.step == 12
    return root, root / "tiny-test-x8", cfg


def test_single_process_checkpoints_cards_and_eval(tiny, images, trained, tmp_path):
    root, out, cfg = trained
    # keep_last=2 of the checkpoints at 4, 8, 12; best is separate
    assert [s for s, _ in ck.step_cards(out)] == [8, 12]
    assert not (out / "step_00000004.safetensors").exists()
    card = ck.read_card(out / "step_00000012.card.json")
    assert card["method"] == "tiny-test" and card["scale"] == 8 and card["step"] == 12
    assert card["sha256"] == ck.sha256_file(out / "step_00000012.safetensors")
    assert card["config_sha256"] == config_hash(cfg) == config_hash(card["config"])
    assert card["dataset"]["n_train"] == 20 and card["dataset"]["val"]["n"] == 4
    assert card["protocol"]["id"] == "dic-v1" and set(card["val_metrics"]) == {"psnr", "ssim"}
    state = torch.load(out / "step_00000012.state.pt", weights_only=True)  # weights_only-safe
    assert state["step"] == 12 and len(state["rng"]) == 1
    # validation log at steps 6 and 12; it learns (loss falls, PSNR rises)
    val = read_csv(out / "val_log.csv")
    assert [int(r["step"]) for r in val] == [6, 12]
    losses = _losses(out)
    assert len(losses) == 12 and losses[-1] < 0.7 * losses[0]
    best = ck.read_card(out / "best.card.json")
    assert best["kind"] == "best" and best["val_metrics"]["psnr"] == max(float(r["psnr"]) for r in val)
    from fsrbench.metrics.psnr_ssim import psnr

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["config_sha256"] == config_hash(cfg)

    # -- evaluation side: TrainableMethod.setup finds the best weights under checkpoint_dir ---------
    ev = import_target(PLUGIN)(checkpoint_dir=str(root))
    ev.setup(8, "cpu")
    assert ev.weights_card["kind"] == "best" and ev.weights_card["step"] == best["step"]
    ref = tiny.build_model(8, cfg)
    ck.load_weights(ref, out / "best.safetensors")
    for (k, a), (_, b) in zip(sorted(ev.model.state_dict().items()), sorted(ref.state_dict().items())):
        assert torch.equal(a, b), k
    assert not ev.model.training
    # the best card's validation PSNR = the benchmark's PSNR of the loaded model on the held-out images
    from fsrbench.imageio import make_lr, read_image, tensor_to_uint8, to_tensor, upsample
    from fsrbench.train.data import split_holdout

    ids = sorted(p.name for p in images.iterdir())
    _, val_ids = split_holdout(ids, 4, seed=0)
    hr_u8 = np.stack([read_image(images / i) for i in val_ids])
    lr_u8 = np.stack([make_lr(h, 8) for h in hr_u8])
    up_u8 = np.stack([upsample(lr, 128) for lr in lr_u8])
    sr = ev.super_resolve(Batch(ids=val_ids, lr=to_tensor(lr_u8), upsampled=to_tensor(up_u8), scale=8))
    assert sr.shape == (4, 3, 128, 128) and float(sr.min()) >= 0 and float(sr.max()) <= 1
    assert psnr(tensor_to_uint8(sr), hr_u8, scale=8).mean() == pytest.approx(best["val_metrics"]["psnr"], abs=1e-9)
    # latest instead of best; explicit weights path; corrupt file; nothing found
    latest = import_target(PLUGIN)(checkpoint_dir=str(root), checkpoint="latest")
    latest.setup(8, "cpu")
    assert latest.weights_card["step"] == 12 and latest.weights_card["kind"] == "step"
    explicit = import_target(PLUGIN)()
    explicit.setup(8, "cpu", weights=str(out / "step_00000008.safetensors"))
    assert explicit.weights_card["step"] == 8
    with pytest.raises(Unavailable, match=r"no trained weights for tiny-test x4.*fsrbench train tiny-test --scale 4"):
        import_target(PLUGIN)(checkpoint_dir=str(root)).setup(4, "cpu")
    import shutil

    for f in ("step_00000008.safetensors", "step_00000008.card.json"):
        shutil.copy(out / f, tmp_path / f)
    data = bytearray((tmp_path / "step_00000008.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "step_00000008.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its card"):
        import_target(PLUGIN)().setup(8, "cpu", weights=str(tmp_path / "step_00000008.safetensors"))


def test_fsrbench_run_picks_up_trained_weights(images, trained, tmp_path):
    """`fsrbench run` evaluates the trained x8 weights and skips x4 with the command that would train it."""
    from fsrbench.cli import main

    root, out, _ = trained
    results = tmp_path / "results"
    rc = main(["run", "--methods", "tiny-test,bicubic", "--datasets", f"folder:{images}", "--scales", "4,8",
               "--plugin", PLUGIN, "--checkpoint-dir", str(root), "--metrics", "psnr", "--out", str(results),
               "--no-progress", "--no-leaderboard", "--limit", "6"])
    assert rc == 0
    import pandas as pd

    table = pd.read_csv(results / "per_image.csv")
    rows = table[(table["method"] == "tiny-test")]
    assert set(rows["scale"]) == {8} and len(rows) == 6 and rows["psnr"].notna().all()
    meta = json.loads((results / "metrics.json").read_text())
    assert ck.sha256_file(out / "best.safetensors") in json.dumps(meta)  # the evaluated weights are named
    assert "no trained weights for tiny-test x4" in json.dumps(meta)
    assert "fsrbench train tiny-test --scale 4" in json.dumps(meta)


def test_existing_run_needs_resume_and_same_config(tiny, images, tmp_path):
    cfg = resolve_config(tiny, "smoke", None, ["val_every=0", "ckpt_every=3"])
    out = tmp_path / "run"
    train(tiny, 4, f"folder:{images}", config=cfg, device="cpu", out=out, progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny, 4, f"folder:{images}", config=cfg, device="cpu", out=out, progress=False)
    changed = dict(cfg, width=4)  # (lr and amp may change on resume: the divergence remedies; tested below)
    with pytest.raises(ValueError, match=r"differs from the checkpoint .* \['width'\]"):
        train(tiny, 4, f"folder:{images}", config=changed, device="cpu", out=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="other images"):
        other = images.parent / "fewer"
        other.mkdir(exist_ok=True)
        for f in sorted(images.iterdir())[:20]:
            (other / f.name).write_bytes(f.read_bytes())
        train(tiny, 4, f"folder:{other}", config=cfg, device="cpu", out=out, resume=True, progress=False)
    longer = dict(cfg, steps=9)  # extending a run is allowed
    res = train(tiny, 4, f"folder:{images}", config=longer, device="cpu", out=out, resume=True, progress=False)
    assert res.step == 9 and len(_losses(out)) == 9


def test_nan_loss_stops_with_last_good_checkpoint(tiny, images, tmp_path):
    cfg = resolve_config(tiny, "default", None, ["nan_at_step=7", "val_every=0"])
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 7.*step_00000004\.card\.json \(step 4\)"):
        train(tiny, 8, f"folder:{images}", config=cfg, device="cpu", out=out, progress=False)
    assert [s for s, _ in ck.step_cards(out)] == [4]
    assert json.loads((out / "run.json").read_text())["status"] == "diverged"
    card = ck.read_card(out / "step_00000004.card.json")
    ck.verify(card)  # intact
    assert all(np.isfinite(_losses(out))) and len(_losses(out)) == 6
    # the CLI reports it in one line with exit status 3
    r = subprocess.run(_cli("--scale", "8", "--dataset", f"folder:{images}", "--out", str(tmp_path / "cli"),
                            "--set", "nan_at_step=2"), capture_output=True, text=True, env=_env(), cwd=REPO,
                       timeout=120)
    assert r.returncode == 3, r.stderr
    assert "stopped:" in r.stderr and "loss became nan at step 2" in r.stderr and "Traceback" not in r.stderr


def test_kill_and_resume_reproduces_the_loss_curve(tiny, images, tmp_path):
    ref_cfg = resolve_config(tiny, "default", None, ["step_sleep=0.25"])
    ref = tmp_path / "ref"
    ref_cfg_fast = dict(ref_cfg, step_sleep=0.0)  # sleeping does not change the numbers
    train(tiny, 8, f"folder:{images}", config=ref_cfg_fast, device="cpu", out=ref, progress=False)
    out = tmp_path / "killed"
    args = _cli("--scale", "8", "--dataset", f"folder:{images}", "--out", str(out), "--set", "step_sleep=0.25")
    proc = subprocess.Popen(args, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "train_log.csv"
    deadline = time.time() + 120
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and (out / "step_00000004.card.json").is_file():
            rows = read_csv(log)
            if len(rows) >= 6:
                os.kill(proc.pid, signal.SIGKILL)
                killed_after = len(rows)
                break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_after is not None, "the training process ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "step_00000012.card.json").exists()
    r = subprocess.run(args + ["--resume"], env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a, b = _losses(ref), _losses(out)
    assert len(b) == 12
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert [int(x["step"]) for x in read_csv(out / "val_log.csv")] == [6, 12]


def test_torchrun_two_processes_gloo(tiny, images, tmp_path):
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "fsrbench", "train", "tiny-test", "--plugin", PLUGIN, "--no-progress", "--scale", "8",
            "--dataset", f"folder:{images}", "--out", str(out), "--device", "cpu", "--set", "dropout=0.0"]
    r = subprocess.run(args, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [s for s, _ in ck.step_cards(out)] == [8, 12]
    card = ck.read_card(out / "step_00000012.card.json")
    assert card["sha256"] == ck.sha256_file(out / "step_00000012.safetensors")
    state = torch.load(out / "step_00000012.state.pt", weights_only=True)
    assert len(state["rng"]) == 2  # one RNG state per rank
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    # same global batches (2 x 2 images), averaged gradients: the single-process curve without dropout
    single = tmp_path / "single"
    cfg = resolve_config(tiny, "default", None, ["dropout=0.0"])
    train(tiny, 8, f"folder:{images}", config=cfg, device="cpu", out=single, progress=False)
    np.testing.assert_allclose(_losses(out), _losses(single), rtol=1e-4)
    ev = import_target(PLUGIN)()
    ev.setup(8, "cpu", weights=str(out))
    assert ev.weights_card["method"] == "tiny-test"


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_paths_on_cpu(tiny, images, tmp_path, amp):
    cfg = resolve_config(tiny, "smoke", None, [f"amp={amp}", "steps=3", "val_every=0", "grad_clip=1.0",
                                               "tensorboard=true", "lr_schedule=cosine", "lr_min=1e-5"])
    out = tmp_path / amp
    res = train(tiny, 4, f"folder:{images}", config=cfg, device="cpu", out=out, progress=True)
    assert res.step == 3 and all(np.isfinite(_losses(out)))
    assert list((out / "tb").glob("events.out.tfevents.*"))  # TensorBoard scalars written
    lrs = [float(r["lr"]) for r in read_csv(out / "train_log.csv")]  # lr used by steps 1..3: cosine 1e-3 -> 1e-5
    want = [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * s / 3)) for s in (0, 1, 2)]
    np.testing.assert_allclose(lrs, want, rtol=1e-6)
    state = torch.load(out / "step_00000003.state.pt", weights_only=True)
    assert bool(state["scaler"]) == (amp == "fp16")  # GradScaler only for fp16


def test_real_faces(shared_data, tiny, tmp_path):
    tr, va = shared_data / "faces-train", shared_data / "faces-val"
    if not tr.is_dir() or not va.is_dir():
        pytest.skip("faces-train / faces-val not present")
    cfg = resolve_config(tiny, "smoke", None, [f"val_dataset=folder:{va}", "steps=4", "val_every=4",
                                               "val_images=8", "ckpt_every=4"])
    res = train(tiny, 8, f"folder:{tr}", config=cfg, device="cpu", out=tmp_path / "faces", progress=False)
    card = ck.read_card(res.last_card)
    assert card["dataset"]["n_train"] == 5000 and card["dataset"]["val"]["n"] == 8
    assert np.isfinite(card["val_metrics"]["psnr"]) and 15 < card["val_metrics"]["psnr"] < 40


def test_training_priors_reach_the_method(tmp_path, cache_dir):
    from plugins.synthetic import ArrayDataset
    from fsrbench.registry import import_target as it

    m = it(f"{HERE / 'plugins' / 'tiny_method.py'}:TinyPriorSR")()
    cfg = resolve_config(m, "smoke", None, ["steps=2", "val_every=0", "val_holdout=2"])
    train(m, 8, ArrayDataset(10, landmarks=True), config=cfg, device="cpu", out=tmp_path / "p", progress=False)
    assert len(m.seen) == 2
    assert m.seen[0] == {"landmarks68": ((4, 68, 2), torch.float32), "landmarks68_ok": ((4,), torch.bool)}


def test_optional_hooks(images, tmp_path):
    m = import_target(f"{HERE / 'plugins' / 'tiny_method.py'}:TinyHooksSR")()
    cfg = resolve_config(m, "smoke", None, ["steps=null", "epochs=1", "val_every=0"])
    out = tmp_path / "h"
    res = train(m, 8, f"folder:{images}", config=cfg, device="cpu", out=out, progress=False)
    assert res.step == 5 == m.total_steps  # 1 epoch = 20 training images / batch 4
    (ctx,) = m.started
    assert len(ctx.train_ids) == 20 and ctx.scale == 8 and ctx.world == 1 and ctx.priors == {}
    state = torch.load(out / "step_00000005.state.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["momentum"] == 0.5 and state["scheduler"] is None
    assert {float(r["lr"]) for r in read_csv(out / "train_log.csv")} == {0.05}


def test_initial_weights_report_is_recorded_in_run_json(images, tmp_path):
    """A model that loaded initial weights in build_model (``init_report``) has them named in run.json."""
    base = import_target(PLUGIN)
    m = import_target(f"{HERE / 'plugins' / 'tiny_method.py'}:TinyInitSR")()
    cfg = resolve_config(m, "smoke", None, ["steps=2", "val_every=0"])
    train(m, 8, f"folder:{images}", config=cfg, device="cpu", out=tmp_path / "i", progress=False)
    run_json = json.loads((tmp_path / "i" / "run.json").read_text())
    assert run_json["init"] == {"esrgan_init": "w.safetensors", "sha256": "ab" * 32, "loaded_tensors": 6}
    plain = tmp_path / "p"
    train(base(), 8, f"folder:{images}", config=cfg, device="cpu", out=plain, progress=False)
    assert "init" not in json.loads((plain / "run.json").read_text())
