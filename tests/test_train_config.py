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


def test_engine_options_leave_existing_recipes_unchanged(tiny, tmp_path):
    """Keys added after reference weights were trained (ENGINE_OPTIONS) are absent from a resolved config
    unless set to something other than their default — so every existing recipe keeps its hash, and a card
    written before a key existed compares equal to a config with that key at its default."""
    from fsrbench.recipes import ENGINE_OPTIONS, option
    from fsrbench.train.loop import _config_diff

    base = resolve_config(tiny, "default")
    assert not set(ENGINE_OPTIONS) & set(base)
    assert option(base, "grad_accum") == 1 and option(base, "ema_decay") is None and option(base, "sync_batchnorm")
    same = resolve_config(tiny, "default", None, ["ema_decay=null", "grad_accum=1", "sync_batchnorm=true",
                                                  "memory_format=channels_last_inputs"])
    assert config_hash(same) == config_hash(base)
    f = tmp_path / "opts.yaml"
    f.write_text("ema_decay: 0.999\ngrad_accum: 2\n")  # --config accepts them too
    changed = resolve_config(tiny, "default", f)
    assert changed["ema_decay"] == 0.999 and changed["grad_accum"] == 2
    assert _config_diff(base, same) == [] and _config_diff(base, changed) == ["ema_decay", "grad_accum"]
    for bad, msg in (("grad_accum=0", "grad_accum"), ("ema_decay=1.5", "ema_decay"), ("memory_format=nhwc", "memory_format"),
                     ("compile=fast", "compile"), ("grad_accum=3", "not divisible by grad_accum"),
                     ("sync_batchnorm=maybe", "sync_batchnorm")):
        with pytest.raises(ConfigError, match=msg):
            resolve_config(tiny, "default", None, [bad])
    with pytest.raises(ConfigError, match="Did you mean"):
        resolve_config(tiny, "default", None, ["ema_dekay=0.9"])


def test_warmup_and_retimed_cosine():
    """Warm-up multiplies the schedule by (s+1)/W; a cosine re-timed at step a continues from the multiplier
    reached there down to lr_min at the new end (no jump)."""
    import math

    import torch

    from fsrbench.train.loop import _Multiplier, make_optimizer, make_scheduler

    p = [torch.nn.Parameter(torch.zeros(1))]
    cfg = {**ENGINE_DEFAULTS, "lr": 1.0, "lr_warmup_steps": 4, "lr_schedule": "constant"}
    opt = make_optimizer(p, cfg)
    sch = make_scheduler(opt, cfg, 10)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    m = _Multiplier("cosine", 8, [], 0.5, 0.0)
    assert [round(m(s), 12) for s in (0, 4, 8)] == [1.0, 0.5, 0.0]
    m.retime(4, 12)  # extended from 8 to 12 steps at step 4
    assert m(4) == pytest.approx(0.5) and m(12) == pytest.approx(0.0)
    assert m(8) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(m(s) >= m(s + 1) for s in range(4, 12))
