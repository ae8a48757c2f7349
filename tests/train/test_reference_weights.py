"""The shipped reference weights (issue 21): package discovery, cards, `fsrbench weights`, recipes.

Independent references: safetensors' own loader for the file format, the cards' SHA-256 recomputed here with
hashlib, and the registered methods' own ``build_model`` for the shapes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsrbench.cli import main as cli_main
from fsrbench.registry import methods as method_registry
from fsrbench.train import checkpoints as ck
from fsrbench.train.reference import (RecipeError, Recipes, improves, stage_done, train_command, write_stage_info,
                                      STAGE_FILE)

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PACKAGE = REPO / "weights" / "fsrbench_weights"
CARDS = sorted(PACKAGE.glob("*.card.json"))


def test_write_safetensors_is_deterministic_and_readable_by_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    g = torch.Generator().manual_seed(0)
    t = {"b.weight": torch.randn(3, 4, generator=g).half(), "a.count": torch.arange(5), "c.flag": torch.tensor([True]),
         "d.bf": torch.randn(2, generator=g).bfloat16(), "e.empty": torch.zeros(0),
         "f.scalar": torch.tensor(7, dtype=torch.long)}  # BatchNorm's num_batches_tracked is 0-dim
    d1 = ck.write_safetensors(t, tmp_path / "1.safetensors", {"z": "1", "a": "2"})
    d2 = ck.write_safetensors(dict(reversed(list(t.items()))), tmp_path / "2.safetensors", {"a": "2", "z": "1"})
    assert d1 == d2 == hashlib.sha256((tmp_path / "1.safetensors").read_bytes()).hexdigest()
    back = load_file(str(tmp_path / "1.safetensors"))
    assert set(back) == set(t)
    for k, v in t.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    with safe_open(str(tmp_path / "1.safetensors"), "pt") as fh:
        assert fh.metadata() == {"a": "2", "z": "1"}


def test_the_weights_package_is_installed_and_found_through_its_entry_point():
    dirs = ck.weight_package_dirs()
    assert PACKAGE.resolve() in [d.resolve() for d in dirs]


@pytest.mark.parametrize("card_path", CARDS, ids=[p.name[: -len(".card.json")] for p in CARDS])
def test_shipped_card_verifies_and_loads_into_its_registered_method(card_path):
    card = ck.read_card(card_path)
    wfile = card_path.parent / card["weights"]
    assert hashlib.sha256(wfile.read_bytes()).hexdigest() == card["sha256"]
    ref = card["reference"]
    assert "not the paper's weights" in ref["label"].lower() and ref["dtype"] == "float16"
    assert wfile.stat().st_size == ref["size_bytes"]
    method = method_registry.get(card["method"])()
    model = method.build_model(int(card["scale"]), card["config"])
    from safetensors.torch import load_file

    stored = load_file(str(wfile))
    own = model.state_dict()
    # every tensor the model needs for inference is in the file; modules only training uses (a GAN's
    # discriminator: the method's training_only_state) are not shipped
    training_only = tuple(getattr(method, "training_only_state", ()))
    assert set(stored) == {k for k in own if not (training_only and k.startswith(training_only))}
    for k, v in stored.items():
        assert tuple(v.shape) == tuple(own[k].shape), k
        assert v.dtype == (torch.float16 if own[k].is_floating_point() else own[k].dtype), k
    ck.load_weights(model, wfile, optional=training_only)
    assert sum(int(v.numel()) for v in stored.values() if v.is_floating_point()) == ref["parameters"]
    fv = ref["faces_val"]
    assert fv is not None and fv["beats_bicubic"], "a shipped reference model must beat bicubic on faces-val"
    for s, v in fv["by_scale"].items():
        assert v["n"] == 300 and v["delta_psnr"] > 0 and v["delta_psnr_ci95"][0] <= v["delta_psnr"], s
    # a model narrower than the paper's says so, naming each width key its stages set (weights list: "reduced")
    width_keys = {"features", "hg_features", "au_width", "align_channels", "regressor_fc"}
    narrowed = sorted({k for st in ref["training"]["stages"] for k in (st.get("set") or {}) if k in width_keys})
    assert bool(ref.get("reduced")) == bool(narrowed), (ref.get("reduced"), narrowed)
    for k in narrowed:
        assert f"{k} " in ref["reduced"], (k, ref["reduced"])
    # no machine paths on a card that ships
    text = card_path.read_text()
    assert "/work/" not in text and "/root/" not in text and "/home/" not in text


def test_weights_check_fails_clearly_on_a_corrupted_file(tmp_path, capsys):
    if not CARDS:
        pytest.skip("no shipped reference weights")
    card = CARDS[0]
    w = card.parent / json.loads(card.read_text())["weights"]
    shutil.copy(card, tmp_path / card.name)
    shutil.copy(w, tmp_path / w.name)
    assert cli_main(["weights", "check", "--dir", str(tmp_path)]) == 0
    data = bytearray((tmp_path / w.name).read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / w.name).write_bytes(bytes(data))
    capsys.readouterr()
    assert cli_main(["weights", "check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert w.name in out and "does not match its card" in out and "git checkout -- weights/" in out


def _demo_folder(path: Path, n: int) -> Path:
    from fsrbench.data.demo import DemoDataset

    ds = DemoDataset()
    path.mkdir(parents=True)
    for sid in ds.ids()[:n]:
        Image.fromarray(ds.load(sid).hr).save(path / f"{sid}.png")
    return path


def test_run_uses_shipped_weights_without_flags_and_user_checkpoints_first(tmp_path, monkeypatch):
    """Two shipped models evaluated end to end on demo faces with no weights flags; a user's own
    checkpoint directory takes priority over the package."""
    import fsrbench

    shipped = [ck.read_card(p) for p in CARDS]
    if len(shipped) < 2:
        pytest.skip("needs two shipped reference entries")
    a, b = shipped[0], shipped[1]
    monkeypatch.chdir(tmp_path)  # no ./checkpoints here
    monkeypatch.delenv("FSRBENCH_CHECKPOINTS", raising=False)
    faces = _demo_folder(tmp_path / "faces", 3)
    picks = {(a["method"], int(a["scale"])), (b["method"], int(b["scale"]))}
    for m, s in sorted(picks):
        df = fsrbench.evaluate(methods=[m, "bicubic"], datasets=[f"folder:{faces}"], scales=[s],
                               metrics=["psnr"], out=str(tmp_path / f"run-{m}-{s}"))
        mine = df[df["method"] == m]
        assert len(mine) == 3 and (mine["status"] == "ok").all() and np.isfinite(mine["psnr"]).all()
        summary = json.loads(next((tmp_path / f"run-{m}-{s}").glob(f"cells/*/x{s}/{m}/summary.json")).read_text())
        assert summary["weights"]["sha256"] == next(c for c in shipped if c["method"] == m
                                                   and int(c["scale"]) == s)["sha256"]
    # the user's checkpoint directory wins over the package: a copy with a different (re-saved) file
    user = tmp_path / "mine"
    src = Path(a["_path"])
    user.mkdir()
    from safetensors.torch import load_file

    tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(src.parent / a["weights"])).items()}
    digest = ck.write_safetensors(tensors, user / "w.safetensors")
    own = {k: v for k, v in a.items() if not k.startswith("_")}
    own.update(weights="w.safetensors", sha256=digest, kind="best")
    (user / "w.card.json").write_text(json.dumps(own))
    monkeypatch.setenv("FSRBENCH_CHECKPOINTS", str(user))
    s = int(a["scale"])
    fsrbench.evaluate(methods=[a["method"]], datasets=[f"folder:{faces}"], scales=[s], metrics=["psnr"],
                      out=str(tmp_path / "run-user"))
    summary = json.loads(next((tmp_path / "run-user").glob(f"cells/*/x{s}/{a['method']}/summary.json")).read_text())
    assert summary["weights"]["sha256"] == digest != a["sha256"]


# ------------------------------------------------------------------------------------------------
# recipes
# ------------------------------------------------------------------------------------------------
def _recipes(tmp_path: Path, text: str) -> Recipes:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return Recipes.load(p)


def test_recipes_order_dependencies_and_refuse_unknown_stages_and_cycles(tmp_path):
    rec = _recipes(tmp_path, """
defaults: {amp: bf16, threads: 1}
stages:
  p: {priors: [landmarks68]}
  a: {method: srcnn, scale: 4, preset: smoke}
  b: {method: srcnn, scale: 4, preset: smoke, init: {init_from: a@2}, needs: [p]}
entries: {b: {stage: b}}
""")
    assert rec.order(["b"]) == ["a", "p", "b"]
    assert [c["stage"] for c in rec.chain("b")] == ["a", "p", "b"]
    assert rec.stages["a"].spec["amp"] == "bf16" and "amp" not in rec.stages["p"].spec
    with pytest.raises(RecipeError, match="unknown stage 'x'"):
        _recipes(tmp_path, "stages:\n  a: {method: srcnn, scale: 4, preset: smoke, needs: [x]}\nentries: {}\n")
    with pytest.raises(RecipeError, match="cycle"):
        _recipes(tmp_path, "stages:\n  a: {method: srcnn, scale: 4, preset: smoke, needs: [b]}\n"
                           "  b: {method: srcnn, scale: 4, preset: smoke, needs: [a]}\nentries: {}\n")
    with pytest.raises(RecipeError, match="has no 'preset'"):
        _recipes(tmp_path, "stages:\n  a: {method: srcnn, scale: 4}\nentries: {}\n")


def test_amp_auto_is_bf16_only_on_a_cpu_with_native_bf16(tmp_path):
    from fsrbench.train.reference import resolve_amp

    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n\n"
                     "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    amd = tmp_path / "amd"
    amd.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma bmi2\n")
    assert resolve_amp("auto", intel) == "bf16"
    assert resolve_amp("auto", amd) == "none"
    assert resolve_amp("auto", tmp_path / "missing") == "none"
    assert resolve_amp("bf16", amd) == "bf16"  # an explicit choice is kept
    with pytest.raises(RecipeError, match="not one of auto"):
        resolve_amp("bf8", amd)


def test_train_command_resumes_and_points_init_at_earlier_stages(tmp_path):
    rec = _recipes(tmp_path, """
stages:
  a: {method: srcnn, scale: 4, preset: smoke}
  u: {method: ufvnet, scale: 8, preset: smoke, init: {init_from: [a, a@2]}, set: {steps: 3, budget: two words}}
entries: {}
""")
    work = tmp_path / "w"
    (work / "a").mkdir(parents=True)
    (work / "a" / "best.safetensors").write_bytes(b"x")
    (work / "a" / "step_00000002.safetensors").write_bytes(b"x")
    cmd = train_command(rec.stages["u"], work, "/d/train", "/d/val", ["fsrbench"])
    assert cmd[:3] == ["fsrbench", "train", "ufvnet"] and "--resume" not in cmd
    assert f"init_from=[{work / 'a' / 'best.safetensors'},{work / 'a' / 'step_00000002.safetensors'}]" in cmd
    assert "steps=3" in cmd and "budget=two words" in cmd
    (work / "u").mkdir()
    (work / "u" / "run.json").write_text("{}")
    (work / "u" / "step_00000001.card.json").write_text("{}")
    assert train_command(rec.stages["u"], work, "/d/train", "/d/val", ["fsrbench"])[-1] == "--resume"
    with pytest.raises(RecipeError, match="no weights step_00000009"):
        train_command(Recipes.load(tmp_path / "r.yaml").stages["u"].__class__(
            "v", {"method": "srcnn", "scale": 4, "preset": "smoke", "init": {"init_from": "a@9"}}), work, "t", "v", ["f"])
    assert not stage_done(work, "a")
    write_stage_info(work, "a", {"status": "finished"})
    assert stage_done(work, "a") and (work / "a" / STAGE_FILE).is_file()


def test_a_new_card_replaces_a_shipped_one_only_when_it_improves():
    def card(*deltas):
        return {"reference": {"faces_val": {"by_scale": {str(i): {"delta_psnr": d} for i, d in enumerate(deltas)}}}}
    assert improves(card(0.5), None)
    assert improves(card(0.6), card(0.5)) and not improves(card(0.5), card(0.5))
    assert not improves(card(0.9, 0.1), card(0.3, 0.2))  # the worse scale decides


@pytest.mark.slow
def test_reproduce_retrains_exports_and_scores_an_entry_byte_identically(tmp_path):
    """`fsrbench weights reproduce` on a tiny recipe: trains, exports float16 + card, scores it; a second
    reproduction from scratch gives the same weights file, byte for byte."""
    train = _demo_folder(tmp_path / "train", 6)
    val = _demo_folder(tmp_path / "val", 2)
    (tmp_path / "r.yaml").write_text("""
defaults: {amp: none, threads: 1}
stages:
  tiny: {method: srcnn, scale: 8, preset: smoke, set: {steps: 2, batch_size: 2, val_images: 2, tensorboard: false}}
entries:
  tiny-x8: {stage: tiny}
""")
    digests = []
    for k in range(2):
        work = tmp_path / f"work{k}"
        rc = cli_main(["weights", "reproduce", "tiny-x8", "--recipes", str(tmp_path / "r.yaml"), "--train-data",
                       str(train), "--val-data", str(val), "--work", str(work)])
        assert rc == 0
        card = json.loads((work / "export" / "tiny-x8.card.json").read_text())
        f = work / "export" / "tiny-x8.safetensors"
        assert hashlib.sha256(f.read_bytes()).hexdigest() == card["sha256"]
        assert card["reference"]["faces_val"]["by_scale"]["8"]["n"] == 2
        assert card["reference"]["training"]["stages"][0]["steps"] == 2
        assert card["dataset"]["name"] == "folder:train" and str(tmp_path) not in json.dumps(card)
        digests.append(card["sha256"])
    assert digests[0] == digests[1]


def test_every_trainable_method_has_an_entry_shipped_or_pending_with_its_reason(capsys):
    """Completeness of the weights package: every registered trainable built-in has a recipe entry at x4 and x8
    (an any-scale method: one entry), and each entry is either shipped (card + weights in the package, no
    ``pending``) or says why it is not (``pending``), never both; `fsrbench weights list` prints the pending ones."""
    rec = Recipes.load(PACKAGE / "recipes.yaml")
    shipped = {p.name[: -len(".card.json")] for p in CARDS}
    covered: dict[str, set] = {}
    for name, entry in rec.entries.items():
        spec = rec.stages[entry["stage"]].spec
        covered.setdefault(spec["method"], set()).add(int(spec["scale"]))
        has_card = name in shipped
        assert has_card != bool(entry.get("pending")), (name, has_card, entry.get("pending"))
        if has_card:
            card = ck.read_card(PACKAGE / f"{name}.card.json")
            assert card["method"] == spec["method"] and (PACKAGE / card["weights"]).is_file()
    assert shipped <= set(rec.entries)
    from conftest import builtin_trainable_methods

    builtins = sorted(builtin_trainable_methods())
    assert len(builtins) == 13, builtins  # the list: srcnn ... ufvnet
    for name in builtins:
        cls = method_registry.get(name)
        if getattr(cls, "any_scale", False):
            assert covered.get(name), f"{name}: no reference entry"
        else:
            assert covered.get(name, set()) >= {4, 8}, f"{name}: reference entries at {sorted(covered.get(name, ()))}"
    assert cli_main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name, why in rec.pending().items():
        assert f"{name}: {why}" in out


def test_a_stage_killed_with_its_machine_keeps_the_time_it_ran(tmp_path, monkeypatch):
    """run_stage writes the running time into the stage file every HEARTBEAT_S seconds, so a stage whose
    process died with the machine (no 'finished' written) adds that time to the resumed run's wall_s."""
    import sys
    import threading
    import time

    from fsrbench.train import reference as R

    rec_file = tmp_path / "r.yaml"
    rec_file.write_text("stages:\n  a: {method: srcnn, scale: 4, preset: smoke}\nentries: {}\n")
    rec = Recipes.load(rec_file)
    monkeypatch.setattr(R, "HEARTBEAT_S", 0.05)
    monkeypatch.setattr(R, "_git_commit", lambda cwd: "c0ffee")
    monkeypatch.setattr(R, "train_command", lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(0.6)"])
    seen = []

    def watch() -> None:
        for _ in range(40):
            f = tmp_path / "w" / "a" / STAGE_FILE
            if f.is_file():
                info = json.loads(f.read_text())
                if "wall_s_interrupted" in info:
                    seen.append(info["wall_s_interrupted"])
            time.sleep(0.03)

    (tmp_path / "w" / "a").mkdir(parents=True)
    # the previous run was killed after 100 s: its file says running, with the heartbeat's time
    (tmp_path / "w" / "a" / STAGE_FILE).write_text(json.dumps({"status": "running", "wall_s_interrupted": 100.0}))
    t = threading.Thread(target=watch)
    t.start()
    assert R.run_stage(rec, "a", tmp_path / "w", "tr", "va", sys.executable, nice=0, log=lambda *_: None) == 0
    t.join()
    info = json.loads((tmp_path / "w" / "a" / STAGE_FILE).read_text())
    assert info["status"] == "finished" and "wall_s_interrupted" not in info
    assert 100.5 <= info["wall_s"] < 130 and seen and min(seen) >= 100.0


def test_budget_line_names_float32_and_autocast_precisions():
    from fsrbench.train.reference import budget_line

    fp32 = {"steps": 150, "batch_size": 2, "amp": "none", "threads": 1, "wall_s": 600}
    bf16 = {"steps": 100, "batch_size": 4, "amp": "bf16", "threads": 1, "wall_s": 300}
    assert budget_line([fp32]) == "1 stage: 150 x 2 steps (x batch), float32, 1 CPU thread, 10.0 min of training"
    assert budget_line([bf16, fp32]) == ("2 stages: 100 x 4 + 150 x 2 steps (x batch), bf16 autocast/float32, "
                                         "1 CPU thread, 15.0 min of training")
    warm = dict(fp32, init={"init_from": "package:fsrnet-x8"})
    assert budget_line([warm]).endswith("10.0 min of training, started from the shipped fsrnet-x8 weights "
                                        "(their budget not included)")


def test_init_from_a_shipped_entry_resolves_to_its_verified_package_file(tmp_path):
    """``package:ENTRY`` init references point at the weights next to the recipe file (not a stage to run),
    are checked against the entry's card, and are named, not pathed, on the exported config."""
    from fsrbench.train.reference import _replace_init_paths

    rec = _recipes(tmp_path, """
stages:
  w: {method: fsrnet, scale: 4, preset: smoke, init: {init_from: package:e8}}
entries: {}
""")
    assert rec.stages["w"].needs() == [] and rec.order(["w"]) == ["w"]
    with pytest.raises(RecipeError, match="no shipped entry 'e8'"):
        train_command(rec.stages["w"], tmp_path / "work", "t", "v", ["f"], tmp_path)
    payload = b"weights"
    (tmp_path / "e8.safetensors").write_bytes(payload)
    card = {"format": ck.CARD_FORMAT, "weights": "e8.safetensors", "sha256": hashlib.sha256(payload).hexdigest(),
            "method": "fsrnet", "scale": 8}
    (tmp_path / "e8.card.json").write_text(json.dumps(card))
    cmd = train_command(rec.stages["w"], tmp_path / "work", "t", "v", ["f"], tmp_path)
    assert f"init_from={tmp_path / 'e8.safetensors'}" in cmd
    assert _replace_init_paths({"init_from": "/x/e8.safetensors"}, rec.stages["w"].spec) == {"init_from": "package:e8"}
    (tmp_path / "e8.safetensors").write_bytes(b"weightz")  # corrupted: the sha256 no longer matches
    with pytest.raises(Exception, match="sha256|SHA-256|checksum"):
        train_command(rec.stages["w"], tmp_path / "work", "t", "v", ["f"], tmp_path)
