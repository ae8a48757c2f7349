"""Training-engine features for GPU runs, checked on CPU with the tiny test method (tests/plugins/tiny_method.py):
gradient accumulation, EMA weights, lr warm-up, schedule and lr changes on resume, NaN detection without
per-step host syncs, fp16 step skipping, validation that leaves torch's thread count alone (bit-exact resume),
per-sample work in the data workers, memory format, torch.compile, priors sharded over processes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fsrbench.registry import import_target
from fsrbench.train import checkpoints as ck
from fsrbench.recipes import resolve_config
from fsrbench.train.logs import read_csv
from fsrbench.train.loop import TrainingDiverged, train

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
HERE = REPO / "tests"
TINY = HERE / "plugins" / "tiny_method.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from plugins.synthetic import write_images

    return write_images(tmp_path_factory.mktemp("features") / "imgs", n=16)


def _method(cls: str = "TinySR"):
    return import_target(f"{TINY}:{cls}")()


def _train(images: Path, out: Path, sets: list[str], cls: str = "TinySR", preset: str = "default", **kw):
    m = _method(cls)
    cfg = resolve_config(m, preset, None, ["val_holdout=4", "val_images=4", *sets])
    return m, train(m, 8, f"folder:{images}", config=cfg, device="cpu", out=out, progress=False, **kw)


def _weights(card_path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ck.weights_path(ck.read_card(card_path))))


def _col(run: Path, name: str) -> list[float]:
    return [float(r[name]) for r in read_csv(run / "train_log.csv")]


def test_gradient_accumulation_equals_the_whole_batch(images, tmp_path):
    """Same images per step, gradients summed over micro-batches: equal to the whole batch up to float32
    summation order (measured ~1e-5 after 3 L1 steps), far from a run with the half batch (the control)."""
    sets = ["dropout=0.0", "steps=3", "val_every=0", "optimizer=sgd", "lr=0.1"]
    _, a = _train(images, tmp_path / "a", sets)
    _, b = _train(images, tmp_path / "b", sets + ["grad_accum=2"])  # 2 micro-batches of 2 per step
    _, c = _train(images, tmp_path / "c", sets + ["batch_size=2"])
    wa, wb, wc = (_weights(r.last_card) for r in (a, b, c))
    accum = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    control = max(float((wa[k] - wc[k]).abs().max()) for k in wa)
    assert accum < 1e-4 and control > 100 * accum, (accum, control)
    np.testing.assert_allclose(_col(tmp_path / "b", "loss"), _col(tmp_path / "a", "loss"), rtol=1e-3)
    assert ck.read_card(b.last_card)["config"]["grad_accum"] == 2


def test_ema_weights_are_scored_saved_and_resumed(images, tmp_path):
    sets = ["dropout=0.0", "steps=3", "val_every=3", "ckpt_every=1", "keep_last=5", "ema_decay=0.5"]
    m, res = _train(images, tmp_path / "ema", sets)
    out = tmp_path / "ema"
    ema = None
    for step in (1, 2, 3):
        live = torch.load(out / f"step_{step:08d}.state.pt", weights_only=True)["model"]
        # the definition, from the live weights: the first update copies them, later ones average
        ema = dict(live) if ema is None else {k: 0.5 * ema[k] + 0.5 * live[k] for k in ema}
        card_w = _weights(out / f"step_{step:08d}.card.json")
        assert all(torch.allclose(card_w[k], ema[k], atol=1e-6) for k in ema), step
    best = ck.read_card(out / "best.card.json")
    best_w = _weights(out / "best.card.json")
    assert best["step"] == 3 and all(torch.equal(best_w[k], card_w[k]) for k in card_w)  # validation scored the EMA
    ev = _method()
    ev.setup(8, "cpu", weights=str(out / "step_00000003.card.json"))  # evaluation loads the EMA
    assert all(torch.equal(ev.model.state_dict()[k], card_w[k]) for k in card_w)
    # resuming restores both the EMA and the live weights: bit-identical to the uninterrupted run
    part = tmp_path / "part"
    _train(images, part, [s.replace("steps=3", "steps=2") for s in sets])
    _, resumed = _train(images, part, sets, resume=True)
    r = _weights(resumed.last_card)
    assert all(torch.equal(r[k], card_w[k]) for k in r)


def test_lr_warmup_is_logged(images, tmp_path):
    _train(images, tmp_path / "w", ["steps=3", "val_every=0", "lr_warmup_steps=2", "lr=0.002"])
    assert _col(tmp_path / "w", "lr") == pytest.approx([0.001, 0.002, 0.002])


@pytest.mark.parametrize("older_checkpoint", [False, True])
def test_resume_with_more_steps_continues_the_cosine(images, tmp_path, older_checkpoint):
    out = tmp_path / "cos"
    sets = ["steps=8", "val_every=0", "ckpt_every=4", "keep_last=5", "lr_schedule=cosine", "lr_min=0.0", "lr=0.001"]
    _train(images, out, sets)
    first = _col(out, "lr")
    for f in out.glob("step_00000008.*"):  # as if the run had stopped after step 4
        f.unlink()
    if older_checkpoint:  # written before the schedule was stored: its length comes from the card's config
        state = torch.load(out / "step_00000004.state.pt", weights_only=True)
        del state["schedule"]
        torch.save(state, out / "step_00000004.state.pt")
    _train(images, out, [s.replace("steps=8", "steps=12") for s in sets], resume=True)
    lrs = _col(out, "lr")
    assert len(lrs) == 12 and lrs[:5] == pytest.approx(first[:5])  # step 5 uses the lr the 8-step run used
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.0001  # then anneals to the new end
    run = json.loads((out / "run.json").read_text())
    assert run["resumes"][-1]["changed"] == {"steps": [8, 12]} and run["resumes"][-1]["from_step"] == 4


def test_divergence_advice_works_lower_lr_on_resume(images, tmp_path):
    """The NaN message advises --resume with a lower lr (or --amp none); the engine accepts both and records them."""
    out = tmp_path / "nan"
    sets = ["nan_at_step=7", "val_every=0"]
    with pytest.raises(TrainingDiverged, match="lower.*--set lr=.*--amp none"):
        _train(images, out, sets)
    # a fresh method object restarts its call counter: NaN again at its 7th call = step 11, after the end
    _, res = _train(images, out, sets + ["lr=0.0005", "steps=9", "amp=bf16"], resume=True)
    assert res.step == 9 and _col(out, "lr")[4:] == pytest.approx([0.0005] * 5)
    changed = json.loads((out / "run.json").read_text())["resumes"][-1]["changed"]
    assert changed["lr"] == [0.001, 0.0005] and changed["amp"] == ["none", "bf16"]


def test_nan_is_found_at_the_next_log_row_and_nothing_after_it_is_saved(images, tmp_path):
    out = tmp_path / "late"
    with pytest.raises(TrainingDiverged, match=r"became nan at step 5 .*noticed at step 6\).*step_00000004"):
        _train(images, out, ["nan_at_step=5", "log_every=3", "ckpt_every=4", "val_every=0"])
    assert [s for s, _ in ck.step_cards(out)] == [4]
    assert [int(r["step"]) for r in read_csv(out / "train_log.csv")] == [3]


def test_fp16_skips_non_finite_steps_without_advancing_the_schedule(images, tmp_path):
    out = tmp_path / "fp16"
    sets = ["amp=fp16", "width=2", "nan_steps=[2, 4, 5]", "fp16_max_skips=2", "lr_milestones=[2]", "lr_gamma=0.5",
            "steps=6", "val_every=0"]
    with pytest.raises(TrainingDiverged, match="fp16: 2 consecutive steps up to step 5"):
        _train(images, out, sets)
    lrs = _col(out, "lr")
    # steps 1-4: step 2 was skipped, so the milestone (after 2 scheduler steps) takes effect at step 4, not 3
    assert lrs == pytest.approx([0.001, 0.001, 0.001, 0.0005])
    scale = _col(out, "amp_scale")
    assert scale[1] == scale[0] / 2 and scale[3] == scale[2] / 2  # the GradScaler backed off on each skip
    loss = _col(out, "loss")
    assert np.isnan(loss[1]) and np.isfinite(loss[0]) and np.isfinite(loss[2])


def test_validation_keeps_the_thread_count_and_resume_is_bit_exact(images, tmp_path):
    """SSIM's numba/OpenMP layer used to raise torch's thread count after the first validation; with a
    validation on a checkpoint step, a resumed run then differed from the uninterrupted one."""
    sets = ["steps=8", "val_every=4", "ckpt_every=4", "keep_last=5"]
    _, full = _train(images, tmp_path / "full", sets)
    assert torch.get_num_threads() == 1  # (the fixture set 1)
    part = tmp_path / "part"
    _train(images, part, [s.replace("steps=8", "steps=4") for s in sets])
    _, res = _train(images, part, sets, resume=True)
    a, b = _weights(full.last_card), _weights(res.last_card)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _col(part, "loss") == _col(tmp_path / "full", "loss")
    assert torch.get_num_threads() == 1


def test_prepare_sample_runs_per_sample_and_does_not_depend_on_workers(images, tmp_path):
    seen = {}
    for workers in (0, 2):
        m, _ = _train(images, tmp_path / f"w{workers}", ["steps=3", "val_every=0", f"num_workers={workers}"],
                      cls="TinyPrepareSR")
        seen[workers] = m.seen
    for a, b in zip(seen[0], seen[2]):
        assert torch.equal(a["draw"], b["draw"]) and torch.equal(a["hr_mean"], b["hr_mean"])
        torch.testing.assert_close(a["hr_mean"], a["batch_hr_mean"], rtol=1e-5, atol=1e-3)  # the flipped HR


@pytest.mark.parametrize("fmt,contiguous,channels_last", [("channels_last_inputs", False, True),
                                                          ("contiguous", True, False),
                                                          ("channels_last", False, True)])
def test_memory_format(images, tmp_path, fmt, contiguous, channels_last):
    m, res = _train(images, tmp_path / fmt, ["steps=1", "val_every=0", f"memory_format={fmt}"], cls="TinyPrepareSR")
    assert m.seen[0]["contiguous"] is contiguous and m.seen[0]["channels_last"] is channels_last
    w = _weights(res.last_card)
    assert all(torch.isfinite(v).all() for v in w.values())


def test_torch_compile_trains_and_saves_plain_weights(images, tmp_path):
    _, res = _train(images, tmp_path / "c", ["steps=2", "val_every=0", "compile=true", "compile_backend=eager"])
    w = _weights(res.last_card)
    assert w and not any("_orig_mod" in k or k.startswith("module.") for k in w)
    ev = _method()
    ev.setup(8, "cpu", weights=str(res.last_card))
    assert set(ev.model.state_dict()) == set(w)


def test_priors_are_computed_in_shards_before_the_process_group(tmp_path, monkeypatch):
    """Process r of N computes chunks c % N == r (no waiting); then one merge gives what one process computes."""
    from plugins.synthetic import ArrayDataset

    from fsrbench.data import priors as P
    from fsrbench.train import ddp
    from fsrbench.train.loop import _compute_prior_shard, _load_priors, _open_data

    monkeypatch.setattr(P, "CHUNK", 4)
    monkeypatch.setenv("FSRBENCH_CACHE", str(tmp_path / "cache"))
    ds = ArrayDataset(14, landmarks=True)
    data = _open_data(_method("TinyPriorSR"), ds, {"val_holdout": 2, "val_images": 2, "seed": 0})
    dp = P.DatasetPriors(ds)
    assert dp.n_chunks() == 4 and dp.missing_chunks("landmarks68") == [0, 1, 2, 3]
    _compute_prior_shard(data, 8, 0, 2, False, "tiny-prior-test")
    assert dp.missing_chunks("landmarks68") == [1, 3]
    _compute_prior_shard(data, 8, 1, 2, False, "tiny-prior-test")
    assert dp.missing_chunks("landmarks68") == []
    _load_priors(data, 8, ddp.DistInfo())
    lm = data.tables["landmarks68"]
    assert lm.ok.all() and np.array_equal(lm.values, ds.lms)
    assert not (dp._chunk_dir("landmarks68", 8)).exists()  # merged into the cache file, chunks removed
    shutil.rmtree(tmp_path / "cache")


def test_ema_starts_from_the_weights_after_the_first_step():
    """The first EMA update copies the live weights (weights a method loads inside its first training step,
    e.g. DIC's init_from, start the average, not the random initialisation); later updates average with
    ``decay``; a restored (resumed) EMA that is marked started averages from its first update."""
    from torch import nn

    from fsrbench.train.ema import EMA

    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(live, 0.9)
    with torch.no_grad():  # "init_from" loaded during the first step, then one optimiser step
        for p in live.parameters():
            p.copy_(torch.full_like(p, 5.0))
        live[1].running_mean.fill_(1.0)
    ema.update(live)
    assert all(torch.equal(e, w) for e, w in zip(ema.module.parameters(), live.parameters()))
    assert torch.equal(ema.module[1].running_mean, live[1].running_mean)
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    ema.update(live)
    for e in ema.module.parameters():
        torch.testing.assert_close(e, torch.full_like(e, 0.9 * 5.0 + 0.1 * 6.0))
    restored = EMA(live, 0.9)
    restored.started = True  # what the training loop sets after loading a checkpoint's EMA weights
    before = [p.clone() for p in restored.module.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    restored.update(live)
    for b, e, w in zip(before, restored.module.parameters(), live.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * w)
