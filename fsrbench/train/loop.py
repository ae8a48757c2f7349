"""The one training loop of fsrbench: any :class:`fsrbench.api.TrainableMethod` on any registered dataset.

``train(method, scale, dataset, config=..., ...)`` runs single-process or under ``torchrun`` (DDP), with
optional autocast (bf16, or fp16 + GradScaler), validation with the benchmark's own metrics, checkpoints
(:mod:`fsrbench.train.checkpoints`) and exact resume.  A method contributes ``build_model``,
``training_loss`` and ``forward_sr``, and optionally ``configure_optimizers(model, config, total_steps) ->
(optimizer, scheduler stepped once per optimiser step, or None)`` (param groups, per-part learning rates) and ``on_train_start(model, config,
TrainContext)`` (statistics of the training set); everything else is here.

Run directory (``out``): ``config.yaml`` (resolved), ``run.json``, ``train_log.csv``, ``val_log.csv``,
``tb/`` and the checkpoints.  Only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from fsrbench.errors import TrainingDiverged
from fsrbench.train import checkpoints as ck
from fsrbench.train import ddp
from fsrbench.train.config import ConfigError, config_hash, dump_yaml
from fsrbench.train.data import (ResumableSampler, TrainSet, ValSet, make_loader, open_dataset, prior_tables,
                                 split_holdout, steps_per_epoch, to_eval_batch, to_train_batch)

#: config keys that may differ between a checkpoint and the command resuming it
RESUMABLE_CHANGES = frozenset({"num_workers", "log_every", "tensorboard", "val_every", "ckpt_every", "keep_last",
                               "steps", "epochs", "val_batch_size", "val_images"})


@dataclass
class TrainContext:
    """What ``method.on_train_start(model, config, ctx)`` may look at (e.g. AU occurrence rates of the
    training set from ``ctx.priors["au"].take(ctx.train_ids)``)."""

    dataset: Any
    train_ids: list[str]
    priors: dict[str, Any]
    scale: int
    device: Any
    rank: int
    world: int


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    last_card: Path | None
    best: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# optimiser / schedule from the flat config keys
# ------------------------------------------------------------------------------------------------
def make_optimizer(params: Any, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    name = str(cfg.get("optimizer", "adam")).lower()
    lr = float(cfg["lr"])
    wd = float(cfg.get("weight_decay") or 0.0)
    eps = float(cfg.get("eps", 1e-8))
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=tuple(float(b) for b in cfg.get("betas", (0.9, 0.999))), eps=eps,
                   weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=float(cfg.get("alpha", 0.99)), eps=eps, weight_decay=wd,
                                   momentum=float(cfg.get("momentum") or 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum") or 0.0), weight_decay=wd)
    raise ConfigError(f"optimizer={name!r}: use adam, adamw, rmsprop or sgd")


class _Multiplier:
    """lr multiplier of step ``s`` (a picklable callable, so LambdaLR's state stays plain data)."""

    def __init__(self, kind: str, total: int, milestones: list[int], gamma: float, min_ratio: float) -> None:
        self.kind, self.total, self.milestones, self.gamma, self.min_ratio = kind, total, milestones, gamma, min_ratio

    def __call__(self, s: int) -> float:
        if self.kind == "cosine":
            t = min(max(s, 0), self.total) / max(self.total, 1)
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "multistep":
            return self.gamma ** sum(1 for m in self.milestones if s >= m)
        return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int) -> Any:
    kind = str(cfg.get("lr_schedule", "multistep"))
    lr = float(cfg["lr"])
    mult = _Multiplier(kind, int(total_steps), [int(m) for m in (cfg.get("lr_milestones") or [])],
                       float(cfg.get("lr_gamma", 0.5)), float(cfg.get("lr_min") or 0.0) / lr if lr else 0.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, mult)


def _state_dict_plain(sched: Any) -> dict[str, Any]:
    sd = sched.state_dict()
    if "lr_lambdas" in sd:  # LambdaLR stores callable objects' __dict__; ours is rebuilt from the config
        sd["lr_lambdas"] = [None] * len(sd["lr_lambdas"])
    return sd


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _amp_dtype(amp: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "none")


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = set(a) | set(b)
    return sorted(k for k in keys if k not in RESUMABLE_CHANGES and json.dumps(a.get(k), sort_keys=True, default=str)
                  != json.dumps(b.get(k), sort_keys=True, default=str))


def _method_name(method: Any) -> str:
    return getattr(method, "name", "") or type(method).__name__


def _update_run_json(run_dir: Path, **values: Any) -> None:
    path = run_dir / "run.json"
    ri = json.loads(path.read_text()) if path.is_file() else {}
    ri.update(values)
    ck.atomic_write_text(path, json.dumps(ri, indent=2, default=str))


def print_header(name: str, scale: int, ds: Any, vds: Any, n_train: int, n_val: int, total: int, gbatch: int,
                 info: Any, dev: Any, run_dir: Path, resume: bool) -> None:
    """The start-up header (stderr): what is trained on what, how long, where the checkpoints go."""
    root = getattr(ds, "root", None) or getattr(ds, "arg", None)
    val = "held out of the training split" if vds is ds else vds.display_name
    lines = [f"fsrbench train: {name} x{scale}",
             f"  dataset   {ds.display_name}" + (f"  root {root}" if root else "")
             + (f"  split {ds.split}" if getattr(ds, "split", None) else ""),
             f"  images    {n_train} training, {n_val} validation ({val})",
             f"  schedule  {total} steps, global batch {gbatch}, {info.world} process(es) on {dev}",
             f"  output    {run_dir}" + ("  (resuming)" if resume else "")]
    if getattr(ds, "is_test_split", False) or getattr(vds, "is_test_split", False):
        lines.append("  WARNING   a split that holds test images is used (--allow-test-split): these weights are "
                     "marked on every board")
    print("\n".join(lines), file=sys.stderr, flush=True)


def default_run_dir(method: str, scale: int) -> Path:
    return Path(os.environ.get("FSRBENCH_CHECKPOINTS") or ck.DEFAULT_CHECKPOINT_DIR) / f"{method}-x{scale}"


class Validator:
    """Scores the model on the validation images with the benchmark's metrics (rank 0)."""

    def __init__(self, method: Any, valset: ValSet | None, scale: int, cfg: Mapping[str, Any], device: Any,
                 dataset_name: str) -> None:
        from fsrbench.protocols import get_protocol
        from fsrbench.registry import instantiate, metrics

        self.method, self.valset, self.scale, self.device = method, valset, scale, device
        self.batch_size = int(cfg.get("val_batch_size") or 16)
        self.protocol = get_protocol(cfg.get("protocol"))
        self.metrics = []
        for name in cfg.get("val_metrics") or []:
            m = instantiate(metrics.get(name), protocol=self.protocol)
            m.setup(device)
            self.metrics.append(m)
        self.best_metric = cfg.get("best_metric")
        self.higher_is_better = True
        for m in self.metrics:
            if self.best_metric in m.column_names():
                self.higher_is_better = bool(m.higher_is_better)
        if self.metrics and self.best_metric and not any(self.best_metric in m.column_names() for m in self.metrics):
            raise ConfigError(f"best_metric={self.best_metric!r} is not a column of val_metrics {cfg.get('val_metrics')}")
        self.dataset_name = dataset_name

    @property
    def enabled(self) -> bool:
        return self.valset is not None and len(self.valset) > 0 and bool(self.metrics)

    def better(self, value: float, best: float | None) -> bool:
        if not math.isfinite(value) and not (value == math.inf and self.higher_is_better):
            return False
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best

    @torch.no_grad()
    def run(self, model: torch.nn.Module) -> dict[str, float]:
        from fsrbench.api import CellContext
        from fsrbench.imageio import tensor_to_uint8

        assert self.valset is not None
        was_training = model.training
        model.eval()
        cols: dict[str, list[np.ndarray]] = {}
        try:
            for raw in self.valset.batches(self.batch_size):
                batch = to_eval_batch(raw, self.scale, self.device)
                sr = self.method.forward_sr(model, batch).float().clamp(0, 1)
                sr_u8 = tensor_to_uint8(sr)
                hr_u8 = raw["hr"].numpy()
                ctx = CellContext(dataset=self.dataset_name, scale=self.scale, method=_method_name(self.method),
                                  protocol=self.protocol, device=self.device, ids=list(raw["ids"]))
                for m in self.metrics:
                    for col, vals in m.per_image(sr_u8, hr_u8, ctx).items():
                        cols.setdefault(col, []).append(np.asarray(vals, dtype=np.float64))
        finally:
            model.train(was_training)
        out = {}
        for col, parts in cols.items():
            v = np.concatenate(parts)
            finite = v[np.isfinite(v)]
            out[col] = float(finite.mean()) if finite.size else float("nan")
        return out


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train(method: Any, scale: int, dataset: Any, *, config: Mapping[str, Any], device: str = "auto",
          out: str | Path | None = None, resume: bool = False, progress: bool = True,
          argv: list[str] | None = None) -> TrainResult:
    """Train ``method`` at ``scale`` on ``dataset`` (spec or Dataset) with a resolved ``config``."""
    info = ddp.setup(device)
    try:
        run_dir = Path(out) if out else default_run_dir(_method_name(method), scale)
        with ck.run_dir_lock(run_dir, info.is_main, lambda err: ddp.broadcast_object(err, info)):
            return _train(method, scale, dataset, dict(config), info, out, resume, progress, argv)
    finally:
        ddp.teardown(info)


def _train(method: Any, scale: int, dataset: Any, cfg: dict[str, Any], info: ddp.DistInfo, out: Any,
           resume: bool, progress: bool, argv: list[str] | None) -> TrainResult:
    name = _method_name(method)
    dev = info.device
    if hasattr(method, "supports") and not method.supports(scale):
        raise ValueError(f"{name} does not support x{scale} (scales: {getattr(method, 'scales', '?')})")
    run_dir = Path(out) if out else default_run_dir(name, scale)
    chash = config_hash(cfg)
    existing = ck.step_cards(run_dir)
    if existing and not resume:
        raise ValueError(f"{run_dir} already holds checkpoints (latest step {existing[-1][0]}); pass --resume to "
                         f"continue that run or --out NEW_DIR for a new one")
    gbatch = int(cfg["batch_size"])
    if gbatch % info.world:
        raise ConfigError(f"batch_size={gbatch} is not divisible by the {info.world} processes; "
                          f"set --set batch_size={max(info.world, gbatch // info.world * info.world)}")
    per_rank = gbatch // info.world
    seed = int(cfg.get("seed") or 0)
    amp = str(cfg.get("amp") or "none")
    amp_dtype = _amp_dtype(amp)
    if amp == "fp16" and dev.type == "cpu":
        print("fsrbench train: note: fp16 autocast on CPU is slow and only meant for testing; use bf16", file=sys.stderr)

    # -- data -----------------------------------------------------------------------------------------
    ds = open_dataset(dataset)
    all_ids = ds.ids()
    if cfg.get("val_dataset"):
        vds = open_dataset(cfg["val_dataset"])
        train_ids, val_ids = all_ids, vds.ids()
    else:
        vds = ds
        train_ids, val_ids = split_holdout(all_ids, int(cfg.get("val_holdout") or 0), seed)
    val_ids = val_ids[: int(cfg.get("val_images") or 0)] if cfg.get("val_images") is not None else val_ids
    spe = steps_per_epoch(len(train_ids), info.world, per_rank)
    if spe < 1:
        raise ValueError(f"{ds.display_name}: {len(train_ids)} training images are fewer than one batch "
                         f"({gbatch}); lower batch_size")
    total = int(cfg["steps"]) if cfg.get("steps") is not None else int(cfg["epochs"]) * spe
    # priors: rank 0 computes and caches them first, the other ranks then read the cache
    train_prior_names = tuple(getattr(method, "train_priors", ()) or ())
    val_prior_names = tuple(getattr(method, "priors", ()) or ())
    tables: dict[str, Any] = {}
    val_tables: dict[str, Any] = {}
    if info.is_main:
        print_header(name, scale, ds, vds, len(train_ids), len(val_ids), total, gbatch, info, dev, run_dir, resume)
    for turn in ((True,) if not info.distributed else (True, False)):
        if info.is_main == turn:
            tables = prior_tables(ds, train_prior_names, scale)
            if info.is_main and val_ids and val_prior_names:
                val_tables = prior_tables(vds, val_prior_names, scale)
        ddp.barrier(info)
    trainset = TrainSet(ds, train_ids, scale, priors=tables, flip=bool(cfg.get("flip", True)), seed=seed,
                        hr_size=int(cfg.get("hr_size") or 128), rot90=bool(cfg.get("rot90", False)),
                        random_scale=cfg.get("random_scale"))
    sampler = ResumableSampler(len(trainset), info.world, info.rank, seed)
    fingerprint = dict(ds.fingerprint())
    fingerprint["train_ids_sha256"] = hashlib.sha256("\n".join(train_ids).encode()).hexdigest()
    fingerprint["n_train"] = len(train_ids)
    fingerprint["val"] = {"name": vds.display_name, "n": len(val_ids),
                          "ids_sha256": hashlib.sha256("\n".join(val_ids).encode()).hexdigest()}
    # the split trained on, and whether it (or the validation split) holds test images: every board marks such weights
    fingerprint["split"] = getattr(ds, "split", None)
    fingerprint["test_split"] = bool(getattr(ds, "is_test_split", False) or getattr(vds, "is_test_split", False))

    # -- model / optimiser --------------------------------------------------------------------------------
    seed_everything(seed)  # identical initial weights on every rank
    method.scale, method.device = scale, dev
    model = method.build_model(scale, cfg)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name}.build_model must return a torch.nn.Module, got {type(model).__name__}")
    model.to(dev)
    if hasattr(method, "on_train_start"):
        method.on_train_start(model, cfg, TrainContext(dataset=ds, train_ids=list(train_ids), priors=tables,
                                                       scale=scale, device=dev, rank=info.rank, world=info.world))
    custom = method.configure_optimizers(model, cfg, total) if hasattr(method, "configure_optimizers") else None
    if custom is not None:  # (optimizer, scheduler or None); None = the engine's optimiser from the config
        optimizer, scheduler = custom
    else:
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        scheduler = make_scheduler(optimizer, cfg, total)
    scaler = torch.amp.GradScaler(dev.type, enabled=(amp == "fp16"))

    # -- resume ---------------------------------------------------------------------------------------
    step, epoch, offset = 0, 0, 0
    best: dict[str, Any] = {}
    resumed_from = None
    rng_to_restore = None
    if resume:
        found = ck.latest_resumable(run_dir)
        if found is None:
            if info.is_main:
                print(f"fsrbench train: --resume: no checkpoint in {run_dir}; starting from step 0", file=sys.stderr)
        else:
            card, state_path = found
            diff = _config_diff(card.get("config") or {}, cfg)
            if diff:
                raise ConfigError(f"--resume: the config differs from the checkpoint {card['_path']} in {diff}; "
                                  f"use the same settings or start a new run with --out NEW_DIR")
            was = (card.get("dataset") or {}).get("train_ids_sha256")
            if was and was != fingerprint["train_ids_sha256"]:
                raise ConfigError(f"--resume: {card['_path']} was trained on other images "
                                  f"({(card.get('dataset') or {}).get('name')}, {(card.get('dataset') or {}).get('n_train')} "
                                  f"training ids) than {ds.display_name} ({len(train_ids)}); use the same --dataset "
                                  f"or start a new run with --out NEW_DIR")
            state = ck.load_state(state_path, map_location="cpu")
            ck.load_weights(model, ck.weights_path(card), str(dev))
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            step, epoch, offset = int(state["step"]), int(state["epoch"]), int(state["offset"])
            best = dict(state.get("best") or {})
            rngs = state.get("rng") or []
            rng_to_restore = rngs[info.rank] if len(rngs) == info.world else None
            if rng_to_restore is None and info.is_main:
                print(f"fsrbench train: note: checkpoint was written by {len(rngs)} process(es), now {info.world}; "
                      "random streams restart (the loss curve will differ slightly)", file=sys.stderr)
            resumed_from = str(card["_path"])
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.tmp"):  # half-written files of a killed run
            stale.unlink(missing_ok=True)
        if resumed_from is not None:
            ck.remove_after(run_dir, step)
        bc = run_dir / "best.card.json"
        if bc.is_file() and (resumed_from is None or int(json.loads(bc.read_text()).get("step", 0)) > step):
            bc.unlink()  # a best from a previous attempt, or from after the resumed checkpoint
            (run_dir / "best.safetensors").unlink(missing_ok=True)
        if not bc.is_file():
            best = {}  # the next validation writes a best again
        ck.atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    model = ddp.wrap(model, info, bool(cfg.get("find_unused_parameters")))
    bare = ck.unwrap(model)
    valset = ValSet(vds, val_ids, scale, priors=val_tables, hr_size=int(cfg.get("hr_size") or 128)) \
        if info.is_main and val_ids else None
    validator = Validator(method, valset, scale, cfg, dev, vds.display_name) if info.is_main else None
    protocol_card = validator.protocol.card() if validator is not None else {}
    logger = None
    if info.is_main:
        from fsrbench.train.logs import TrainLogger

        logger = TrainLogger(run_dir, tensorboard=bool(cfg.get("tensorboard", True)),
                             resume_step=step if resumed_from is not None else None)
        run_info = {"method": name, "scale": scale, "dataset": fingerprint, "config_sha256": chash,
                    "protocol": protocol_card, "world_size": info.world, "device": str(dev), "amp": amp,
                    "total_steps": total, "steps_per_epoch": spe, "resumed_from": resumed_from,
                    "argv": argv or sys.argv, "python": platform.python_version(), "torch": torch.__version__,
                    "status": "running"}
        init_report = getattr(bare, "init_report", None)  # initial weights loaded by build_model (path, sha256, counts)
        if init_report:
            run_info["init"] = init_report
        ck.atomic_write_text(run_dir / "run.json", json.dumps(run_info, indent=2, default=str))
    ddp.barrier(info)

    # per-rank random streams for the loss (dropout etc.): seeded, or restored from the checkpoint
    seed_everything(seed + 1 + info.rank)
    if rng_to_restore is not None:
        ck.set_rng_state(rng_to_restore)

    def save(step_now: int, val_metrics: Mapping[str, float]) -> Path | None:
        rngs = ddp.gather_objects(ck.rng_state(), info)
        card_path = None
        if info.is_main:
            state = {"step": step_now, "epoch": epoch_pos[0], "offset": epoch_pos[1],
                     "optimizer": optimizer.state_dict(), "scheduler": _state_dict_plain(scheduler) if scheduler is not None else None,
                     "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "rng": rngs,
                     "best": best, "config_sha256": chash, "world_size": info.world}
            card = ck.make_card(method=name, scale=scale, step=step_now, kind="step", weights_file="", sha256="",
                                config=cfg, config_sha256=chash, dataset=fingerprint, protocol=protocol_card,
                                val_metrics=val_metrics)
            card_path = ck.write_checkpoint(run_dir, step=step_now, model=bare, state=state, card=card,
                                            keep_last=int(cfg.get("keep_last") or 3))
        ddp.barrier(info)
        return card_path

    # -- training -----------------------------------------------------------------------------------
    log_every = max(1, int(cfg.get("log_every") or 1))
    ckpt_every = int(cfg.get("ckpt_every") or 0)
    val_every = int(cfg.get("val_every") or 0)
    grad_clip = cfg.get("grad_clip")
    epoch_pos = [epoch, offset]
    if epoch_pos[1] >= spe:
        epoch_pos = [epoch_pos[0] + 1, 0]
    last_card: Path | None = None
    last_val: dict[str, float] = {}
    bar = None
    if info.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"train {name} x{scale}", unit="step", dynamic_ncols=True)
    acc_loss, acc_n, t0, imgs = 0.0, 0, time.perf_counter(), 0
    model.train()
    try:
        while step < total:
            sampler.set_position(epoch_pos[0], epoch_pos[1] * per_rank)
            loader = make_loader(trainset, sampler, per_rank, int(cfg.get("num_workers") or 0), seed + epoch_pos[0],
                                 pin_memory=dev.type == "cuda")
            for raw in loader:
                batch = to_train_batch(raw, scale, dev)
                ctx = torch.autocast(device_type=dev.type, dtype=amp_dtype) if amp_dtype is not None \
                    else contextlib.nullcontext()
                with ctx:
                    loss, terms = method.training_loss(model, batch, cfg)
                bad = not bool(torch.isfinite(loss.detach()).all())
                if ddp.any_true(bad, info):
                    good = ck.step_cards(run_dir)
                    where = (f"the last good checkpoint is {good[-1][1]} (step {good[-1][0]}); resume it with --resume "
                             f"after lowering the learning rate (--set lr=...) or with --amp none"
                             if good else "no checkpoint was written before it")
                    shown = {k: float(v) for k, v in (terms or {}).items()}
                    if info.is_main:
                        _update_run_json(run_dir, status="diverged", step=step)
                    raise TrainingDiverged(f"{name} x{scale}: the loss became {float(loss.detach().float())} at step "
                                           f"{step + 1} (terms {shown}); training stopped, nothing was saved for "
                                           f"this step; {where}")
                lr_used = float(optimizer.param_groups[0]["lr"])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                epoch_of_step = epoch_pos[0]
                epoch_pos[1] += 1
                if epoch_pos[1] >= spe:
                    epoch_pos = [epoch_pos[0] + 1, 0]
                imgs += gbatch
                lval = float(ddp.all_mean(loss.detach().float(), info)) if (step % log_every == 0 or step == total) \
                    else float(loss.detach().float())
                acc_loss += float(loss.detach().float())
                acc_n += 1
                if step % log_every == 0 or step == total:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    row = {"loss": lval, "loss_mean": acc_loss / max(acc_n, 1), "lr": lr_used,
                           "img_per_s": imgs / dt, "epoch": epoch_of_step}
                    row.update({k: float(v) for k, v in (terms or {}).items()})
                    if logger is not None:
                        logger.log_train(step, row)
                    if bar is not None:
                        bar.set_postfix(loss=f"{lval:.4g}", img_s=f"{imgs / dt:.1f}")
                    acc_loss, acc_n, t0, imgs = 0.0, 0, time.perf_counter(), 0
                if bar is not None:
                    bar.update(1)
                do_val = (val_every and step % val_every == 0) or step == total
                if do_val:
                    vm: dict[str, float] = {}
                    if validator is not None and validator.enabled:
                        vm = validator.run(bare)
                        if logger is not None:
                            logger.log_val(step, vm)
                        key = validator.best_metric
                        if key in vm and validator.better(vm[key], best.get("value")):
                            best = {"metric": key, "value": vm[key], "step": step}
                            card = ck.make_card(method=name, scale=scale, step=step, kind="best", weights_file="",
                                                sha256="", config=cfg, config_sha256=chash, dataset=fingerprint,
                                                protocol=protocol_card, val_metrics=vm)
                            ck.write_best(run_dir, bare, card)
                    last_val = ddp.broadcast_object(vm, info)
                    best = ddp.broadcast_object(best, info)
                    ddp.barrier(info)
                if (ckpt_every and step % ckpt_every == 0) or step == total:
                    last_card = save(step, last_val if do_val else {})
                if step >= total:
                    break
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    if info.is_main:
        _update_run_json(run_dir, status="finished", step=step, best=best, val_metrics=last_val)
    return TrainResult(run_dir=run_dir, step=step, last_card=last_card, best=best, val_metrics=last_val)
