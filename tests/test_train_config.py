"""Config resolution of the training engine: preset order, --config/--set overrides, hashing."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsrbench.registry import import_target
from fsrbench.train.config import ENGINE_DEFAULTS, ConfigError, config_hash, parse_set, resolve_config

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PLUGIN = REPO / "tests" / "plugins" / "tiny_method.py"


@pytest.fixture(scope="module")
def tiny():
    return import_target(f"{PLUGIN}:TinySR")()


def test_order_defaults_preset_file_set(tiny, tmp_path):
    cfg = resolve_config(tiny, "default")
    assert cfg["steps"] == 12 and cfg["width"] == 8  # method default over engine default
    assert cfg["optimizer"] == ENGINE_DEFAULTS["optimizer"]  # untouched engine key
    assert resolve_config(tiny, "smoke")["steps"] == 6  # preset over default
    f = tmp_path / "over.yaml"
    f.write_text("steps: 7\nlr: 2.0e-4\n")
    cfg = resolve_config(tiny, "smoke", f, ["lr=5e-5", "lr_milestones=[2, 4]"])
    assert cfg["steps"] == 7  # file over preset
    assert cfg["lr"] == pytest.approx(5e-5) and isinstance(cfg["lr"], float)  # --set over file; 5e-5 is a float
    assert cfg["lr_milestones"] == [2, 4]


def test_unknown_keys_and_presets_are_errors(tiny, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean width"):
        resolve_config(tiny, "default", None, ["widht=4"])
    with pytest.raises(ConfigError, match="no preset 'fast'"):
        resolve_config(tiny, "fast")
    f = tmp_path / "bad.yaml"
    f.write_text("not_a_key: 1\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve_config(tiny, "default", f)
    with pytest.raises(ConfigError, match="key=value"):
        parse_set("lr")


def test_nested_set():
    from fsrbench.train.config import apply_set

    cfg = {"affectsr": {"hist": "colour", "bins": 64}, "lr": 1.0}
    apply_set(cfg, "affectsr.hist", "fer")
    assert cfg["affectsr"] == {"hist": "fer", "bins": 64}


def test_hash_is_canonical(tiny):
    a = resolve_config(tiny, "default")
    b = dict(reversed(list(a.items())))
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(resolve_config(tiny, "default", None, ["seed=1"]))


def test_foreign_key_names_are_refused(tiny):
    with pytest.raises(ConfigError, match="`iterations` -> `steps`"):
        _validate({"iterations": 5, "steps": 3})
    with pytest.raises(ConfigError, match="`hflip` -> `flip`"):
        _validate({"hflip": False})


def _validate(cfg):
    from fsrbench.train.config import ENGINE_DEFAULTS, validate

    validate({**ENGINE_DEFAULTS, **cfg})


def test_schedules():
    import torch

    from fsrbench.train.loop import make_optimizer, make_scheduler

    p = [torch.nn.Parameter(torch.zeros(1))]
    base = {**ENGINE_DEFAULTS, "lr": 1.0}
    opt = make_optimizer(p, {**base, "lr_milestones": [2, 4]})
    sch = make_scheduler(opt, {**base, "lr_milestones": [2, 4], "lr_gamma": 0.5}, 10)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = make_optimizer(p, {**base, "optimizer": "rmsprop", "alpha": 0.9})
    assert isinstance(opt, torch.optim.RMSprop) and opt.param_groups[0]["alpha"] == 0.9
    sch = make_scheduler(opt, {**base, "lr_schedule": "constant", "lr_milestones": [1]}, 10)
    for _ in range(3):
        opt.step()
        sch.step()
    assert opt.param_groups[0]["lr"] == 1.0
    with pytest.raises(ConfigError, match="optimizer="):
        make_optimizer(p, {**base, "optimizer": "lion"})


def test_recipes_sit_below_the_contracts_and_keep_their_old_path():
    """The recipes moved to fsrbench/recipes.py (base layer: weights builds a card-less file with the default
    recipe); fsrbench.train.config is the same module."""
    import fsrbench.recipes
    import fsrbench.train.config
    import fsrbench.weights
    from fsrbench.train import config

    assert fsrbench.train.config is fsrbench.recipes and config is fsrbench.recipes
    assert fsrbench.weights.resolve_config is fsrbench.recipes.resolve_config
