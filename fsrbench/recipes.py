"""Recipes (training configurations): engine defaults + the method's YAML preset + ``--config`` file + ``--set``.

Below the contracts (layer "base", with no fsrbench import but the errors) because evaluation needs a method's
default recipe too: a weights file without a card is built with it (:mod:`fsrbench.weights`).  Old import path:
``fsrbench.train.config`` (the same module object).

A method's ``config_file`` (path relative to its module) is a YAML mapping of presets::

    default:            # the paper's recipe (docs/methods/<method>.md), every [CHOICE] a key
      lr: 1.0e-4
      batch_size: 16
      steps: 150000
    smoke:              # merged on top of ``default``: a CPU-minutes run
      batch_size: 4
      steps: 20

Keys are flat (``lr``, ``batch_size``, ``lr_milestones`` ...); a method may also use nested mappings for its
own options (``--set affectsr.hist=fer`` navigates into ``affectsr: {hist: ...}``).  The engine's own keys
and their defaults are :data:`ENGINE_DEFAULTS` (documented in docs/training.md).  Resolution order, later
wins: ENGINE_DEFAULTS < method ``default`` < method preset (e.g. ``smoke``) < ``--config FILE`` < ``--set``.
Files are read with ``yaml.safe_load``.  The resolved config's identity is :func:`config_hash` (SHA-256 of
its canonical JSON), stored in every checkpoint card.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from fsrbench.errors import ConfigError
from fsrbench.protocols import DEFAULT_PROTOCOL

#: The engine's keys and their defaults.  A method's YAML may override any of them.
ENGINE_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    # -- length and batch ----------------------------------------------------------------------------
    "batch_size": 16,  # global batch (divided by the number of DDP processes)
    "steps": None,  # optimiser steps; when null, `epochs` decides
    "epochs": None,  # passes over the training ids (drop_last); used when steps is null
    "num_workers": 2,  # DataLoader workers per process
    # -- optimiser / schedule (flat keys; fsrbench.train.loop.make_optimizer / make_scheduler) -------
    "optimizer": "adam",  # adam | adamw | rmsprop | sgd
    "lr": 1.0e-4,
    "betas": [0.9, 0.999],
    "eps": 1.0e-8,
    "weight_decay": 0.0,
    "alpha": 0.99,  # RMSprop smoothing
    "momentum": 0.0,  # SGD / RMSprop momentum
    "lr_schedule": "multistep",  # multistep (constant when no milestones) | cosine | constant
    "lr_milestones": [],  # steps at which lr *= lr_gamma
    "lr_gamma": 0.5,
    "lr_min": 0.0,  # cosine: final lr
    "grad_clip": None,  # max global grad norm (null = off)
    "amp": "none",  # none | bf16 | fp16 (fp16 uses a GradScaler); --amp overrides
    # -- data ----------------------------------------------------------------------------------------
    "hr_size": 128,
    "flip": True,  # random horizontal flip (landmark priors mirrored with their index permutation)
    "rot90": False,  # random 90-degree rotations of the HR (methods without priors only)
    "random_scale": None,  # [low, high]: SPARNet's random zoom in/out of the HR (methods without priors only)
    "val_dataset": None,  # dataset spec of the validation set (else: held out from the training set)
    "val_holdout": 100,  # images held out of the training set for validation when val_dataset is null
    "val_images": 100,  # at most this many validation images are scored
    "val_every": 5000,  # steps between validations (0 = only at the end)
    "val_metrics": ["psnr", "ssim"],  # benchmark metrics (registry names) computed on validation
    "best_metric": "psnr",  # the validation metric that selects best.safetensors
    "val_batch_size": 16,
    "protocol": DEFAULT_PROTOCOL,  # evaluation protocol for validation metrics (and recorded in the cards)
    # -- checkpoints / logging -----------------------------------------------------------------------
    "ckpt_every": 5000,  # steps between checkpoints (a final one is always written)
    "keep_last": 3,  # step checkpoints kept (best.* is separate and always kept)
    "log_every": 50,  # steps between CSV/TensorBoard loss rows
    "tensorboard": True,
    # -- distributed ---------------------------------------------------------------------------------
    "find_unused_parameters": False,  # DistributedDataParallel option
}


#: Engine keys added after reference weights were first trained (issue 26).  Each one's default is the engine's
#: behaviour before the key existed (or what the issue asked for: ``sync_batchnorm``, ``persistent_workers``), and
#: a key at its default is left out of the resolved config — so every existing recipe keeps its config hash, and
#: a weight card written before a key existed means exactly what it meant.  Read them with :func:`option`.
ENGINE_OPTIONS: dict[str, Any] = {
    # -- optimisation --------------------------------------------------------------------------------
    "grad_accum": 1,  # micro-batches per optimiser step (batch_size stays the global batch per step)
    "lr_warmup_steps": 0,  # linear warm-up of the lr over the first N optimiser steps (0 = off)
    "ema_decay": None,  # EMA of the weights (e.g. 0.999); evaluated, selected and saved as the card's weights
    "ema_buffers": "copy",  # copy | average: buffers of the EMA model (BN statistics, counters)
    "fp16_max_skips": 25,  # fp16: consecutive GradScaler-skipped steps before the run counts as diverged
    # -- distributed ---------------------------------------------------------------------------------
    "sync_batchnorm": True,  # under DDP: BatchNorm layers normalise over the global batch
    "ddp_timeout_s": 1800,  # process-group timeout (NCCL's default is 600 s)
    # -- speed knobs (never change the numbers except where noted) -----------------------------------
    "memory_format": "channels_last_inputs",  # channels_last_inputs (as before) | contiguous | channels_last
    "compile": False,  # false | true | a torch.compile mode ("default", "reduce-overhead", "max-autotune")
    "compile_backend": "inductor",  # torch.compile backend
    "cudnn_benchmark": False,  # torch.backends.cudnn.benchmark (CUDA; non-deterministic kernel choice)
    "persistent_workers": True,  # DataLoader workers live for the whole run
    "prefetch_factor": 2,  # batches prepared ahead per worker
    "pin_memory": True,  # pinned host memory for the batches (CUDA only)
}

#: the values an option may take (beyond its type)
_OPTION_CHOICES = {"ema_buffers": ("copy", "average"),
                   "memory_format": ("channels_last_inputs", "contiguous", "channels_last")}


def option(cfg: Mapping[str, Any], key: str) -> Any:
    """An :data:`ENGINE_OPTIONS` key of a resolved config (its default when absent)."""
    return cfg.get(key, ENGINE_OPTIONS[key])


def with_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every absent :data:`ENGINE_OPTIONS` key at its default (for comparisons)."""
    return {**ENGINE_OPTIONS, **dict(cfg)}


def drop_default_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """Remove the :data:`ENGINE_OPTIONS` keys that are at their default (they mean "as before")."""
    for k, default in ENGINE_OPTIONS.items():
        if k in cfg and canonical_json(cfg[k]) == canonical_json(default):
            del cfg[k]
    return cfg


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge, everything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    try:
        with p.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc


def method_config_path(method: Any) -> Path | None:
    """Absolute path of ``method.config_file`` (relative to the module defining the method class)."""
    cls = method if isinstance(method, type) else type(method)
    rel = getattr(cls, "config_file", "") or ""
    if not rel:
        return None
    p = Path(rel)
    if p.is_absolute():
        return p
    module = importlib.import_module(cls.__module__)
    return Path(module.__file__).resolve().parent / p  # type: ignore[arg-type]


def method_presets(method: Any) -> dict[str, dict[str, Any]]:
    """The presets of a method's YAML (``{}`` when it has none)."""
    path = method_config_path(method)
    if path is None:
        return {}
    data = read_yaml(path)
    if not isinstance(data, Mapping) or "default" not in data or not isinstance(data["default"], Mapping):
        raise ConfigError(f"{path}: a method config must be a mapping with a `default` preset mapping")
    for k, v in data.items():
        if not isinstance(v, Mapping):
            raise ConfigError(f"{path}: preset {k!r} must be a mapping")
    return {str(k): dict(v) for k, v in data.items()}


def parse_set(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (``lr=1e-4`` -> float, ``lr_milestones=[10,20]``)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
    return key, value


def _all_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        keys.append(prefix + str(k))
        if isinstance(v, Mapping):
            keys += _all_keys(v, prefix + str(k) + ".")
    return keys


def apply_set(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (flat, or dotted into nested mappings); unknown keys are an error with suggestions."""
    if key in cfg or key in ENGINE_OPTIONS:
        cfg[key] = value
        return
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = _all_keys(cfg) + list(ENGINE_OPTIONS)
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"--set {key}: unknown config key.{hint} (see the method's YAML and docs/training.md)")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def _normalize_numbers(obj: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; turn such strings into floats."""
    if isinstance(obj, dict):
        return {k: _normalize_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalize_numbers(v) for v in obj]
    if isinstance(obj, str):
        try:
            if any(c in obj.lower() for c in "e.") and obj.strip().lower() not in ("nan", "inf", "-inf"):
                return float(obj)
        except ValueError:
            return obj
    return obj


def resolve_config(method: Any, preset: str = "default", config_file: str | Path | None = None,
                   sets: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved training config of ``method`` (see the module docstring for the order)."""
    presets = method_presets(method)
    cfg = copy.deepcopy(ENGINE_DEFAULTS)
    if presets:
        cfg = deep_merge(cfg, presets["default"])
        if preset != "default":
            if preset not in presets:
                import difflib

                close = difflib.get_close_matches(preset, sorted(presets), n=2, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{method_config_path(method)}: no preset {preset!r}.{hint} "
                                  f"Presets: {', '.join(sorted(presets))} (--preset NAME)")
            cfg = deep_merge(cfg, presets[preset])
    elif preset not in ("default", None):
        raise ConfigError(f"method {getattr(method, 'name', method)!r} has no config file, so no preset {preset!r}")
    if config_file:
        extra = read_yaml(config_file)
        if extra is None:
            extra = {}
        if not isinstance(extra, Mapping):
            raise ConfigError(f"{config_file}: --config must be a YAML mapping of overrides")
        unknown = [k for k in extra if k not in cfg and k not in ENGINE_OPTIONS]
        if unknown:
            raise ConfigError(f"{config_file}: unknown config key(s) {unknown}; known keys: "
                              f"{sorted(set(cfg) | set(ENGINE_OPTIONS))}")
        cfg = deep_merge(cfg, extra)
    for item in sets:
        k, v = parse_set(item)
        apply_set(cfg, k, v)
    cfg = drop_default_options(_normalize_numbers(cfg))
    validate(cfg)
    return cfg


#: engine keys that hold true/false (a value such as "maybe" or 1 is refused, not silently taken as true)
BOOLEAN_KEYS = ("flip", "rot90", "tensorboard", "find_unused_parameters")

#: keys other code bases use for engine settings -> the engine's name
RENAMED = {"iterations": "steps", "hflip": "flip", "max_steps": "steps", "num_epochs": "epochs"}


def validate(cfg: Mapping[str, Any]) -> None:
    misnamed = [f"`{k}` -> `{v}`" for k, v in RENAMED.items() if k in cfg]
    if misnamed:
        raise ConfigError(f"config uses key(s) the engine does not read: {', '.join(misnamed)}; rename them in the "
                          "method's YAML (engine keys: docs/training.md)")
    if cfg.get("steps") is None and cfg.get("epochs") is None:
        raise ConfigError("config sets neither `steps` nor `epochs`; set one (e.g. --set steps=1000)")
    for key in ("steps", "epochs"):
        v = cfg.get(key)
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())  # 1e3 arrives as 1000.0
        if v is not None and (isinstance(v, bool) or not whole or v < 1):
            raise ConfigError(f"{key}={v!r}: must be a whole number of at least 1 (e.g. --set {key}=1000), or null to "
                              f"let {'epochs' if key == 'steps' else 'steps'} decide")
    for key in BOOLEAN_KEYS:
        if key in cfg and cfg[key] is not None and not isinstance(cfg[key], bool):
            raise ConfigError(f"{key}={cfg[key]!r}: must be true or false (e.g. --set {key}=false)")
    if cfg.get("amp") not in ("none", "bf16", "fp16", None):
        raise ConfigError(f"amp={cfg.get('amp')!r}: use none, bf16 or fp16")
    if cfg.get("lr_schedule") not in ("multistep", "cosine", "constant"):
        raise ConfigError(f"lr_schedule={cfg.get('lr_schedule')!r}: use multistep, cosine or constant")
    if int(cfg.get("batch_size") or 0) < 1:
        raise ConfigError("batch_size must be >= 1")
    if int(cfg.get("keep_last", 1)) < 1:
        raise ConfigError("keep_last must be >= 1")
    validate_options(cfg)


def validate_options(cfg: Mapping[str, Any]) -> None:
    """Check the :data:`ENGINE_OPTIONS` keys of ``cfg`` (messages name the key and the fix)."""
    for key, choices in _OPTION_CHOICES.items():
        if option(cfg, key) not in choices:
            raise ConfigError(f"{key}={option(cfg, key)!r}: use one of {', '.join(choices)}")
    for key in ("grad_accum", "prefetch_factor", "fp16_max_skips"):
        v = option(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{key}={v!r}: must be an integer >= 1")
    for key in ("lr_warmup_steps", "ddp_timeout_s"):
        v = option(cfg, key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{key}={v!r}: must be a number >= 0")
    ema = option(cfg, "ema_decay")
    if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 < float(ema) < 1.0):
        raise ConfigError(f"ema_decay={ema!r}: use null (off) or a number in (0, 1), e.g. 0.999")
    comp = option(cfg, "compile")
    if not isinstance(comp, bool) and comp not in ("default", "reduce-overhead", "max-autotune",
                                                    "max-autotune-no-cudagraphs"):
        raise ConfigError(f"compile={comp!r}: use false, true or a torch.compile mode (default, reduce-overhead, "
                          "max-autotune)")
    for key in ("sync_batchnorm", "cudnn_benchmark", "persistent_workers", "pin_memory"):
        if not isinstance(option(cfg, key), bool):
            raise ConfigError(f"{key}={option(cfg, key)!r}: use true or false")
    gb = int(cfg.get("batch_size") or 0)
    if gb % option(cfg, "grad_accum"):
        raise ConfigError(f"batch_size={gb} is not divisible by grad_accum={option(cfg, 'grad_accum')}; batch_size "
                          "is the global batch of one optimiser step, split into grad_accum micro-batches")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a resolved config."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()


def dump_yaml(cfg: Mapping[str, Any]) -> str:
    return yaml.safe_dump(json.loads(canonical_json(cfg)), sort_keys=True, default_flow_style=None)
