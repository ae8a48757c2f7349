"""fsrbench.weights: where evaluation looks for trained weights, and the partial loads of init_from keys."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsrbench import weights
from fsrbench.errors import Unavailable


def test_eval_weight_roots_order(tmp_path, monkeypatch):
    monkeypatch.delenv("FSRBENCH_CHECKPOINTS", raising=False)
    monkeypatch.setattr(weights, "weight_package_dirs", lambda: [tmp_path / "shipped"])
    assert weights.eval_weight_roots({}) == [Path("checkpoints"), tmp_path / "shipped"]
    monkeypatch.setenv("FSRBENCH_CHECKPOINTS", str(tmp_path / "env"))
    assert weights.eval_weight_roots({}) == [tmp_path / "env", tmp_path / "shipped"]
    assert weights.eval_weight_roots({"checkpoint_dir": str(tmp_path / "cli"), "reference_weights": False}) == [
        tmp_path / "cli"]


def test_missing_weights_name_every_searched_root(tmp_path, monkeypatch):
    class Tiny:
        name = "tiny"
        any_scale = False

    monkeypatch.setattr(weights, "eval_weight_roots", lambda opts: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(Unavailable, match=f"searched {tmp_path / 'a'}, {tmp_path / 'b'}"):
        weights.load_for_eval(Tiny(), 4)
    # folders inside the working directory are named relative to it (no machine paths on a board)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(weights, "eval_weight_roots", lambda opts: [tmp_path / "w" / "pkg", Path("ck"), Path("/elsewhere")])
    with pytest.raises(Unavailable, match=r"searched w/pkg, ck, /elsewhere\)"):
        weights.load_for_eval(Tiny(), 4)


def test_missing_weights_name_the_pending_reference_entry_and_its_command(tmp_path, monkeypatch):
    class Tiny:
        name = "tiny"
        any_scale = False

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "recipes.yaml").write_text(
        "stages:\n"
        "  tiny-s0-x8: {method: tiny, scale: 8, preset: p}\n"
        "  tiny-x8: {method: tiny, scale: 8, preset: p}\n"
        "  tiny-x4: {method: tiny, scale: 4, preset: p}\n"
        "entries:\n"
        "  tiny-x8: {stage: tiny-x8, pending: 'not trained yet'}\n"
        "  tiny-x4: {stage: tiny-x4}\n")
    monkeypatch.setattr(weights, "eval_weight_roots", lambda opts: [tmp_path / "ck", pkg])
    with pytest.raises(Unavailable) as err:
        weights.load_for_eval(Tiny(), 8)
    msg = str(err.value)
    assert "the reference entry tiny-x8 is not shipped yet" in msg and "`fsrbench weights reproduce tiny-x8`" in msg
    assert "fsrbench train" not in msg
    # an entry that is not pending (its file simply is not there) gets the training command, as does a scale
    # no recipe lists
    for scale in (4, 2):
        with pytest.raises(Unavailable, match=f"train with: fsrbench train tiny --scale {scale}"):
            weights.load_for_eval(Tiny(), scale)
    # the user's own checkpoint folder is not a weights package: a recipes.yaml there is not read
    monkeypatch.setattr(weights, "eval_weight_roots", lambda opts: [pkg])
    with pytest.raises(Unavailable, match="train with: fsrbench train tiny --scale 8"):
        weights.load_for_eval(Tiny(), 8)


def test_read_state_dict_unwraps_and_strips_ddp_prefix(tmp_path):
    t = torch.arange(6.0).reshape(2, 3)
    torch.save({"model": {"module.conv.weight": t}}, tmp_path / "a.pt")
    sd = weights.read_state_dict(tmp_path / "a.pt")
    assert list(sd) == ["conv.weight"] and torch.equal(sd["conv.weight"], t)
    from safetensors.torch import save_file

    save_file({"conv.weight": t}, str(tmp_path / "b.safetensors"))
    assert torch.equal(weights.read_state_dict(tmp_path / "b.safetensors")["conv.weight"], t)
    with pytest.raises(FileNotFoundError, match="fix it like this: .*nope.pt"):
        weights.read_state_dict(tmp_path / "nope.pt", missing="fix it like this: {path}")
    torch.save([t], tmp_path / "c.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        weights.read_state_dict(tmp_path / "c.pt")


def test_load_partial_takes_the_prefixed_entries_that_fit(tmp_path):
    src = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    torch.save({f"generator.{k}": v for k, v in src.state_dict().items()} | {"other.x": torch.zeros(1)},
               tmp_path / "g.pt")
    dst = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    rep = weights.load_partial(dst, tmp_path / "g.pt", prefix="generator.")
    assert rep["loaded"] == ["0.bias", "0.weight", "1.bias", "1.weight"]
    assert rep["missing"] == ["2.bias", "2.weight"]
    assert torch.equal(dst[0].weight, src[0].weight) and torch.equal(dst[1].bias, src[1].bias)
    with pytest.raises(ValueError, match="no weights for this model"):
        weights.load_partial(dst, tmp_path / "g.pt", prefix="discriminator.")


def test_old_import_paths_are_the_same_functions():
    from fsrbench.train import checkpoints
    from fsrbench_baselines.mpenet import method as mpenet

    assert checkpoints.load_for_eval is weights.load_for_eval
    assert checkpoints.read_card is weights.read_card and checkpoints.verify is weights.verify
    assert mpenet.load_partial is weights.load_partial


def test_training_only_modules_may_be_absent_from_a_weights_file_and_nothing_else(tmp_path):
    """A GAN's discriminator (a method's ``training_only_state``) is not shipped: the file without it loads,
    the modules it holds keep their values; a missing generator tensor or an extra tensor is still refused."""
    from safetensors.torch import save_file

    class G(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = torch.nn.Conv2d(3, 3, 1)
            self.discriminator = torch.nn.Linear(4, 1)

    src = G()
    gen_only = {k: v for k, v in src.state_dict().items() if k.startswith("generator.")}
    save_file(gen_only, str(tmp_path / "g.safetensors"))
    model = G()
    d_before = model.discriminator.weight.detach().clone()
    with pytest.raises(RuntimeError, match="discriminator.weight"):
        weights.load_weights(model, tmp_path / "g.safetensors")  # strict by default
    weights.load_weights(model, tmp_path / "g.safetensors", optional=("discriminator.",))
    assert torch.equal(model.generator.weight, src.generator.weight)
    assert torch.equal(model.discriminator.weight, d_before)
    save_file({"generator.weight": gen_only["generator.weight"]}, str(tmp_path / "no_bias.safetensors"))
    with pytest.raises(RuntimeError, match=r"missing 1 tensor\(s\), e.g. \['generator.bias'\]"):
        weights.load_weights(G(), tmp_path / "no_bias.safetensors", optional=("discriminator.",))
    save_file(dict(gen_only, extra=torch.zeros(1)), str(tmp_path / "extra.safetensors"))
    with pytest.raises(RuntimeError, match=r"1 unexpected tensor\(s\), e.g. \['extra'\]"):
        weights.load_weights(G(), tmp_path / "extra.safetensors", optional=("discriminator.",))
