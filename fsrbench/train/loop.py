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
from fsrbench.recipes import ConfigError, config_hash, dump_yaml, option, with_options
from fsrbench.train import checkpoints as ck
from fsrbench.train import ddp
from fsrbench.train.data import (ResumableSampler, TrainSet, ValSet, make_loader, open_dataset, prior_tables,
                                 split_holdout, steps_per_epoch, to_eval_batch, to_train_batch)
from fsrbench.train.ema import EMA

#: config keys that may differ between a checkpoint and the command resuming it
RESUMABLE_CHANGES = frozenset({"num_workers", "log_every", "tensorboard", "val_every", "ckpt_every", "keep_last",
                               "steps", "epochs", "val_batch_size", "val_images",
                               # speed knobs (ENGINE_OPTIONS)
                               "memory_format", "compile", "compile_backend", "cudnn_benchmark", "persistent_workers",
                               "prefetch_factor", "pin_memory", "ddp_timeout_s", "fp16_max_skips",
                               # the remedies a divergence message advises (recorded in run.json "resumes")
                               "lr", "amp"})
#: resumable changes that change the numbers: each resume that changes one is recorded in run.json
RECORDED_CHANGES = ("lr", "amp", "steps", "epochs", "memory_format")


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
    """lr multiplier of step ``s`` (a picklable callable, so LambdaLR's state stays plain data).

    ``segments`` re-time a cosine schedule: ``[start, ratio_at_start, end]`` rows, the last one with ``start <= s``
    applies (``[0, 1, total]`` is the plain cosine).  A resumed run whose length changed appends a row at the
    resumed step, from the multiplier reached there down to ``lr_min`` at the new end — the lr continues
    where it was instead of jumping.  ``warmup``: multiplied by ``(s + 1) / warmup`` for ``s < warmup``."""

    def __init__(self, kind: str, total: int, milestones: list[int], gamma: float, min_ratio: float,
                 warmup: int = 0, segments: list[list[float]] | None = None) -> None:
        self.kind, self.total, self.milestones, self.gamma, self.min_ratio = kind, total, milestones, gamma, min_ratio
        self.warmup = int(warmup)
        self.segments = [list(x) for x in segments] if segments else [[0, 1.0, int(total)]]

    def schedule(self, s: int) -> float:
        if self.kind == "cosine":
            start, r0, end = self.segments[0]
            for seg in self.segments[1:]:
                if s >= seg[0]:
                    start, r0, end = seg
            t = min(max(s - start, 0), end - start) / max(end - start, 1)
            return self.min_ratio + (r0 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "multistep":
            return self.gamma ** sum(1 for m in self.milestones if s >= m)
        return 1.0

    def __call__(self, s: int) -> float:
        w = min(1.0, (s + 1) / self.warmup) if self.warmup > 0 and s < self.warmup else 1.0
        return w * self.schedule(s)

    def retime(self, at: int, total: int) -> None:
        """The run now ends at ``total`` (it ended at ``self.total``); continue the schedule from step ``at``."""
        if int(total) != int(self.total) and self.kind == "cosine":
            self.segments.append([int(at), self.schedule(int(at)), int(total)])
        self.total = int(total)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int) -> Any:
    kind = str(cfg.get("lr_schedule", "multistep"))
    lr = float(cfg["lr"])
    mult = _Multiplier(kind, int(total_steps), [int(m) for m in (cfg.get("lr_milestones") or [])],
                       float(cfg.get("lr_gamma", 0.5)), float(cfg.get("lr_min") or 0.0) / lr if lr else 0.0,
                       int(option(cfg, "lr_warmup_steps")))
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


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any], resumable: frozenset[str] | set[str] = RESUMABLE_CHANGES
                 ) -> list[str]:
    """Keys whose values differ between configs ``a`` and ``b`` (absent engine options = their defaults),
    except ``resumable`` ones."""
    a, b = with_options(a), with_options(b)
    keys = set(a) | set(b)
    return sorted(k for k in keys if k not in resumable and json.dumps(a.get(k), sort_keys=True, default=str)
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
        self.memory_format = str(option(cfg, "memory_format"))
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
        threads = torch.get_num_threads()  # metrics' own thread pools (numba's OpenMP layer) may reset it
        model.eval()
        cols: dict[str, list[np.ndarray]] = {}
        try:
            for raw in self.valset.batches(self.batch_size):
                batch = to_eval_batch(raw, self.scale, self.device, self.memory_format)
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
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        out = {}
        for col, parts in cols.items():
            v = np.concatenate(parts)
            finite = v[np.isfinite(v)]
            out[col] = float(finite.mean()) if finite.size else float("nan")
        return out


# ------------------------------------------------------------------------------------------------
# data and priors (before the process group exists)
# ------------------------------------------------------------------------------------------------
@dataclass
class _Data:
    ds: Any
    vds: Any
    train_ids: list[str]
    val_ids: list[str]
    train_priors: tuple[str, ...]
    val_priors: tuple[str, ...]
    tables: dict[str, Any] = field(default_factory=dict)
    val_tables: dict[str, Any] = field(default_factory=dict)


def _open_data(method: Any, dataset: Any, cfg: Mapping[str, Any]) -> _Data:
    ds = open_dataset(dataset)
    all_ids = ds.ids()
    seed = int(cfg.get("seed") or 0)
    if cfg.get("val_dataset"):
        vds = open_dataset(cfg["val_dataset"])
        train_ids, val_ids = all_ids, vds.ids()
    else:
        vds = ds
        train_ids, val_ids = split_holdout(all_ids, int(cfg.get("val_holdout") or 0), seed)
    val_ids = val_ids[: int(cfg.get("val_images") or 0)] if cfg.get("val_images") is not None else val_ids
    return _Data(ds, vds, list(train_ids), list(val_ids), tuple(getattr(method, "train_priors", ()) or ()),
                 tuple(getattr(method, "priors", ()) or ()) if val_ids else ())


def _prior_jobs(data: _Data) -> list[tuple[Any, tuple[str, ...]]]:
    return [(d, names) for d, names in ((data.ds, data.train_priors), (data.vds, data.val_priors)) if names]


def _compute_prior_shard(data: _Data, scale: int, rank: int, world: int, progress: bool, method_name: str) -> None:
    """Before the process group: compute this process's share of the priors that are not cached yet.

    The per-image work is split into chunks of images; process ``rank`` computes chunks ``c % world == rank``
    (a single process computes all of them).  Nobody waits for anybody while the face models run, and an
    interrupted computation resumes from the chunks on disk."""
    from fsrbench.data.priors import DatasetPriors

    for dset, names in _prior_jobs(data):
        dp = DatasetPriors(dset)
        pending = dp.pending_base(names, scale)
        if not pending:
            continue
        mine = {b: [c for c in dp.missing_chunks(b, scale) if c % world == rank] for b in pending}
        n_ids = len(dset.ids())
        n_img = sum(min(dp.chunk, n_ids - c * dp.chunk) for cs in mine.values() for c in cs)
        if rank == 0:
            print(f"fsrbench train: computing priors {pending} of {dset.display_name} ({n_ids} images, {world} "
                  f"process(es)); they are cached for later runs — `fsrbench data priors {dset.display_name} "
                  f"--method {method_name} --scale {scale} --workers N` precomputes them in parallel",
                  file=sys.stderr)
        bar = None
        if progress and rank == 0 and n_img:
            from tqdm import tqdm

            bar = tqdm(total=n_img, desc=f"priors {','.join(pending)}", unit="img", dynamic_ncols=True)
        for b, chunks in mine.items():
            dp.compute_chunks(b, scale, chunks, on_image=(bar.update if bar is not None else None))
        if bar is not None:
            bar.close()


def _load_priors(data: _Data, scale: int, info: ddp.DistInfo) -> None:
    """After the process group: rank 0 merges the chunks (and derives parsing/skin/AU), then the others
    load the cached files."""
    for turn in ((True,) if not info.distributed else (True, False)):
        if info.is_main == turn:
            data.tables = prior_tables(data.ds, data.train_priors, scale)
            if data.val_priors and info.is_main:
                data.val_tables = prior_tables(data.vds, data.val_priors, scale)
        ddp.barrier(info)


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train(method: Any, scale: int, dataset: Any, *, config: Mapping[str, Any], device: str = "auto",
          out: str | Path | None = None, resume: bool = False, progress: bool = True,
          argv: list[str] | None = None) -> TrainResult:
    """Train ``method`` at ``scale`` on ``dataset`` (spec or Dataset) with a resolved ``config``."""
    cfg = dict(config)
    rank, world = ddp.env_world()
    _check_batch(cfg, world)
    data = _open_data(method, dataset, cfg)
    _compute_prior_shard(data, scale, rank, world, progress, _method_name(method))
    info = ddp.setup(device, float(option(cfg, "ddp_timeout_s")))
    try:
        _load_priors(data, scale, info)
        run_dir = Path(out) if out else default_run_dir(_method_name(method), scale)
        with ck.run_dir_lock(run_dir, info.is_main, lambda err: ddp.broadcast_object(err, info)):
            return _train(method, scale, data, cfg, info, out, resume, progress, argv)
    finally:
        ddp.teardown(info)


def _check_batch(cfg: Mapping[str, Any], world: int) -> tuple[int, int]:
    """(per-process batch of one optimiser step, per-process micro-batch) or a ConfigError."""
    gbatch, accum = int(cfg["batch_size"]), int(option(cfg, "grad_accum"))
    if gbatch % (world * accum):
        ok = max(world * accum, gbatch // (world * accum) * world * accum)
        raise ConfigError(f"batch_size={gbatch} is not divisible by the {world} process(es) x grad_accum={accum}; "
                          f"set --set batch_size={ok}")
    return gbatch // world, gbatch // world // accum


def _finite_flag(loss: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(loss.detach()).all()


def _rescale_lr(optimizer: Any, scheduler: Any, ratio: float) -> None:
    """Multiply every param group's lr (and the schedule's base) by ``ratio`` (a resume with another ``lr``)."""
    for g in optimizer.param_groups:
        if "initial_lr" in g:
            g["initial_lr"] = float(g["initial_lr"]) * ratio
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [float(b) * ratio for b in scheduler.base_lrs]
        if hasattr(scheduler, "lr_lambdas"):
            for g, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                g["lr"] = base * fn(scheduler.last_epoch)
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
            return
    for g in optimizer.param_groups:
        g["lr"] = float(g["lr"]) * ratio


class _Wrapper:
    """The model as the method sees it: DDP (with ``find_unused_parameters`` as the config and the method's
    optional ``ddp_find_unused_parameters(model, config)`` hook want it now) and ``torch.compile``."""

    def __init__(self, bare: torch.nn.Module, method: Any, cfg: Mapping[str, Any], info: ddp.DistInfo) -> None:
        self.bare, self.method, self.cfg, self.info = bare, method, cfg, info
        self.allowed = bool(cfg.get("find_unused_parameters"))
        self.hook = getattr(method, "ddp_find_unused_parameters", None)
        self.compile = option(cfg, "compile")
        self.current: bool | None = None
        self.model: Any = None
        self.ddp: Any = None  # the DistributedDataParallel object (for no_sync), or None
        self.history: list[list[Any]] = []  # [step, find_unused_parameters] at each DDP (re)wrap

    def get(self, step: int = 0) -> Any:
        want = self.allowed and (self.hook is None or bool(self.hook(self.bare, self.cfg)))
        if self.model is None or (self.info.distributed and want != self.current):
            self.model = self.ddp = None  # release the previous DDP reducer first
            model = ddp.wrap(self.bare, self.info, want)
            self.ddp = model if self.info.distributed else None
            if self.info.distributed:
                self.history.append([int(step), bool(want)])
            if self.compile:
                mode = None if self.compile is True else str(self.compile)
                model = torch.compile(model, mode=mode, backend=str(option(self.cfg, "compile_backend")))
            self.model, self.current = model, want
        return self.model


def _train(method: Any, scale: int, data: _Data, cfg: dict[str, Any], info: ddp.DistInfo, out: Any,
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
    per_rank, micro = _check_batch(cfg, info.world)
    accum = int(option(cfg, "grad_accum"))
    seed = int(cfg.get("seed") or 0)
    amp = str(cfg.get("amp") or "none")
    amp_dtype = _amp_dtype(amp)
    fp16 = amp == "fp16"
    mem_format = str(option(cfg, "memory_format"))
    if fp16 and dev.type == "cpu" and info.is_main:
        print("fsrbench train: note: fp16 autocast on CPU is slow and only meant for testing; use bf16", file=sys.stderr)
    if option(cfg, "cudnn_benchmark") and dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- data -----------------------------------------------------------------------------------------
    ds, vds, train_ids, val_ids, tables = data.ds, data.vds, data.train_ids, data.val_ids, data.tables
    spe = steps_per_epoch(len(train_ids), info.world, per_rank)
    if spe < 1:
        raise ValueError(f"{ds.display_name}: {len(train_ids)} training images are fewer than one batch "
                         f"({gbatch}); lower batch_size")
    total = int(cfg["steps"]) if cfg.get("steps") is not None else int(cfg["epochs"]) * spe
    if info.is_main:
        print_header(name, scale, ds, vds, len(train_ids), len(val_ids), total, gbatch, info, dev, run_dir, resume)
    trainset = TrainSet(ds, train_ids, scale, priors=tables, flip=bool(cfg.get("flip", True)), seed=seed,
                        hr_size=int(cfg.get("hr_size") or 128), rot90=bool(cfg.get("rot90", False)),
                        random_scale=cfg.get("random_scale"), prepare=getattr(method, "prepare_sample", None),
                        config=cfg)
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
    n_sync_bn = 0
    if option(cfg, "sync_batchnorm"):
        model, n_sync_bn = ddp.sync_batchnorm(model, info)
    if mem_format == "channels_last":
        model.to(memory_format=torch.channels_last)
    if hasattr(method, "on_train_start"):
        method.on_train_start(model, cfg, TrainContext(dataset=ds, train_ids=list(train_ids), priors=tables,
                                                       scale=scale, device=dev, rank=info.rank, world=info.world))
    custom = method.configure_optimizers(model, cfg, total) if hasattr(method, "configure_optimizers") else None
    if custom is not None:  # (optimizer, scheduler or None); None = the engine's optimiser from the config
        optimizer, scheduler = custom
        if option(cfg, "lr_warmup_steps"):
            raise ConfigError(f"lr_warmup_steps: {name} builds its own optimiser and schedule "
                              "(configure_optimizers); warm-up is the engine schedule's option — set it to 0")
    else:
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        scheduler = make_scheduler(optimizer, cfg, total)
    scaler = torch.amp.GradScaler(dev.type, enabled=fp16)
    ema_decay = option(cfg, "ema_decay")
    ema = EMA(model, float(ema_decay), str(option(cfg, "ema_buffers"))) if ema_decay else None

    # -- resume ---------------------------------------------------------------------------------------
    step, epoch, offset = 0, 0, 0
    best: dict[str, Any] = {}
    resumed_from = None
    resume_record: dict[str, Any] | None = None
    rng_to_restore = None
    if resume:
        found = ck.latest_resumable(run_dir)
        if found is None:
            if info.is_main:
                print(f"fsrbench train: --resume: no checkpoint in {run_dir}; starting from step 0", file=sys.stderr)
        else:
            card, state_path = found
            old_cfg = card.get("config") or {}
            diff = _config_diff(old_cfg, cfg)
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
            if ema is not None:  # the card's weights are the EMA; the live weights are in the state
                ck.load_weights(ema.module, ck.weights_path(card), str(dev))
                ema.started = True
                model.load_state_dict(state["model"])
            else:
                ck.load_weights(model, ck.weights_path(card), str(dev))
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler") and fp16:
                scaler.load_state_dict(state["scaler"])
            step, epoch, offset = int(state["step"]), int(state["epoch"]), int(state["offset"])
            best = dict(state.get("best") or {})
            old_total = int((state.get("schedule") or {}).get("total") or 0) or (
                int(old_cfg["steps"]) if old_cfg.get("steps") is not None else int(old_cfg.get("epochs") or 0) * spe)
            mult = scheduler.lr_lambdas[0] if custom is None and scheduler is not None else None
            if isinstance(mult, _Multiplier):
                segs = (state.get("schedule") or {}).get("segments")  # absent in checkpoints of older code
                mult.segments = [list(x) for x in segs] if segs else [[0, 1.0, old_total]]
                mult.total = old_total
                mult.retime(int(scheduler.last_epoch), total)
                for g, base in zip(optimizer.param_groups, scheduler.base_lrs):
                    g["lr"] = base * mult(scheduler.last_epoch)
                scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
            if float(old_cfg.get("lr", cfg["lr"])) != float(cfg["lr"]) and float(old_cfg.get("lr") or 0):
                _rescale_lr(optimizer, scheduler if custom is None else None, float(cfg["lr"]) / float(old_cfg["lr"]))
            changed = {k: [with_options(old_cfg).get(k), with_options(cfg).get(k)] for k in RECORDED_CHANGES
                       if json.dumps(with_options(old_cfg).get(k), default=str) != json.dumps(with_options(cfg).get(k), default=str)}
            resume_record = {"from_step": step, "checkpoint": str(card["_path"]), "changed": changed}
            rngs = state.get("rng") or []
            rng_to_restore = rngs[info.rank] if len(rngs) == info.world else None
            if rng_to_restore is None and info.is_main:
                print(f"fsrbench train: note: checkpoint was written by {len(rngs)} process(es), now {info.world}; "
                      "random streams restart (the loss curve will differ slightly)", file=sys.stderr)
            resumed_from = str(card["_path"])
    previous_resumes: list[Any] = []
    if info.is_main:
        if resumed_from is not None and (run_dir / "run.json").is_file():
            try:
                previous_resumes = list(json.loads((run_dir / "run.json").read_text()).get("resumes") or [])
            except (OSError, ValueError):
                previous_resumes = []
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
    bare = model
    wrapper = _Wrapper(bare, method, cfg, info)
    scored = ema.module if ema is not None else bare  # what validation scores and the cards hold
    valset = ValSet(vds, val_ids, scale, priors=data.val_tables, hr_size=int(cfg.get("hr_size") or 128)) \
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
        if n_sync_bn:
            run_info["sync_batchnorm_layers"] = n_sync_bn
        if resume_record is not None:
            run_info["resumes"] = previous_resumes + [resume_record]
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
            mult = scheduler.lr_lambdas[0] if custom is None and scheduler is not None else None
            state = {"step": step_now, "epoch": epoch_pos[0], "offset": epoch_pos[1],
                     "optimizer": optimizer.state_dict(), "scheduler": _state_dict_plain(scheduler) if scheduler is not None else None,
                     "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "rng": rngs,
                     "best": best, "config_sha256": chash, "world_size": info.world}
            if isinstance(mult, _Multiplier):
                state["schedule"] = {"total": int(mult.total), "segments": [list(map(float, x)) for x in mult.segments]}
            if ema is not None:
                state["model"] = bare.state_dict()
            card = ck.make_card(method=name, scale=scale, step=step_now, kind="step", weights_file="", sha256="",
                                config=cfg, config_sha256=chash, dataset=fingerprint, protocol=protocol_card,
                                val_metrics=val_metrics)
            card_path = ck.write_checkpoint(run_dir, step=step_now, model=scored, state=state, card=card,
                                            keep_last=int(cfg.get("keep_last") or 3))
        ddp.barrier(info)
        return card_path

    # -- training -----------------------------------------------------------------------------------
    log_every = max(1, int(cfg.get("log_every") or 1))
    ckpt_every = int(cfg.get("ckpt_every") or 0)
    val_every = int(cfg.get("val_every") or 0)
    grad_clip = cfg.get("grad_clip")
    max_skips = int(option(cfg, "fp16_max_skips"))
    epoch_pos = [epoch, offset]
    if epoch_pos[1] >= spe:
        epoch_pos = [epoch_pos[0] + 1, 0]
    last_card: Path | None = None
    last_val: dict[str, float] = {}
    bar = None
    if info.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"train {name} x{scale}", unit="step", dynamic_ncols=True)
    workers = int(cfg.get("num_workers") or 0)
    loader = make_loader(trainset, sampler, micro, workers, seed,
                         pin_memory=dev.type == "cuda" and bool(option(cfg, "pin_memory")),
                         persistent_workers=bool(option(cfg, "persistent_workers")),
                         prefetch_factor=int(option(cfg, "prefetch_factor")))
    zero = torch.zeros((), device=dev)
    # device-side accumulators: read (one host sync) only when a log row, a validation or a checkpoint is due
    acc_loss, acc_n, t0, imgs = zero.clone(), 0, time.perf_counter(), 0
    first_bad_step = torch.zeros((), dtype=torch.long, device=dev)  # 0 = every loss so far was finite
    first_bad_loss = zero.clone()
    first_bad_terms: dict[str, torch.Tensor] = {}
    skips = 0

    def check_finite(at_step: int) -> None:
        """Stop (TrainingDiverged) when a loss since the start was NaN/inf on any process; not under fp16,
        where the GradScaler skips such steps."""
        if fp16:
            return
        if float(ddp.all_max((first_bad_step > 0).float(), info)) <= 0:
            return
        bad_step = int(first_bad_step) or at_step
        good = [(s, c) for s, c in ck.step_cards(run_dir) if s < bad_step] if info.is_main else []
        where = (f"the last good checkpoint is {good[-1][1]} (step {good[-1][0]}); resume it with --resume "
                 f"after lowering the learning rate (--set lr=...) or with --amp none"
                 if good else "no checkpoint was written before it")
        shown = {k: float(v) for k, v in first_bad_terms.items()}
        if info.is_main:
            _update_run_json(run_dir, status="diverged", step=bad_step)
        what = float(first_bad_loss) if int(first_bad_step) else "nan/inf (in another process)"
        late = f", noticed at step {at_step}" if at_step != bad_step else ""
        raise TrainingDiverged(f"{name} x{scale}: the loss became {what} at step {bad_step} (terms {shown}{late}); "
                               f"training stopped, nothing was saved for this step or after it; {where}")

    def one_step() -> tuple[torch.Tensor, Mapping[str, Any], float]:
        """One optimiser step over ``grad_accum`` micro-batches: (mean loss, the last micro-batch's terms,
        lr used).  No host synchronisation except the GradScaler's own (fp16)."""
        nonlocal model, first_bad_step, first_bad_loss, skips
        model = wrapper.get(step)
        optimizer.zero_grad(set_to_none=True)
        step_loss = zero.clone()
        step_bad = torch.zeros((), dtype=torch.bool, device=dev)
        terms: Mapping[str, Any] = {}
        for k in range(accum):
            batch = to_train_batch(next(batches), scale, dev, mem_format)
            last = k == accum - 1
            sync = wrapper.ddp.no_sync() if (not last and wrapper.ddp is not None) else contextlib.nullcontext()
            ac = torch.autocast(device_type=dev.type, dtype=amp_dtype) if amp_dtype is not None \
                else contextlib.nullcontext()
            with sync:
                with ac:
                    loss, terms = method.training_loss(model, batch, cfg)
                loss_d = loss.detach().float()
                step_loss = step_loss + (loss_d / accum if accum > 1 else loss_d)
                step_bad = step_bad | ~torch.isfinite(loss_d)
                scaler.scale(loss / accum if accum > 1 else loss).backward()
        if not fp16:  # remember the first non-finite step on the device
            newly = step_bad & (first_bad_step == 0)
            first_bad_step = torch.where(newly, torch.full_like(first_bad_step, step + 1), first_bad_step)
            first_bad_loss = torch.where(newly, step_loss, first_bad_loss)
            for t, v in (terms or {}).items():
                tv = torch.as_tensor(v, dtype=torch.float32, device=dev).detach().reshape(())
                first_bad_terms[t] = torch.where(newly, tv, first_bad_terms.get(t, torch.full_like(tv, float("nan"))))
        lr_used = float(optimizer.param_groups[0]["lr"])
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(bare.parameters(), float(grad_clip))
        scale_before = scaler.get_scale() if fp16 else 0.0
        scaler.step(optimizer)
        scaler.update()
        if fp16 and scaler.get_scale() < scale_before:  # skipped: the schedule and the EMA do not advance
            skips += 1
            if skips >= max_skips:
                if info.is_main:
                    _update_run_json(run_dir, status="diverged", step=step + 1)
                raise TrainingDiverged(
                    f"{name} x{scale}: fp16: {skips} consecutive steps up to step {step + 1} had non-finite losses "
                    f"or gradients (GradScaler scale now {scaler.get_scale():g}); training stopped; resume the last "
                    f"checkpoint with --resume --amp bf16 (or --amp none), or lower the learning rate (--set lr=...)")
        else:
            skips = 0
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update(bare)
        return step_loss, terms, lr_used

    model = wrapper.get(step)
    model.train()
    try:
        while step < total:
            sampler.set_position(epoch_pos[0], epoch_pos[1] * per_rank)
            batches = iter(loader)
            for _ in range(min(spe - epoch_pos[1], total - step)):
                step_loss, terms, lr_used = one_step()
                step += 1
                epoch_of_step = epoch_pos[0]
                epoch_pos[1] += 1
                if epoch_pos[1] >= spe:
                    epoch_pos = [epoch_pos[0] + 1, 0]
                imgs += gbatch
                acc_loss = acc_loss + step_loss
                acc_n += 1
                do_val = bool((val_every and step % val_every == 0) or step == total)
                do_ckpt = bool((ckpt_every and step % ckpt_every == 0) or step == total)
                do_log = step % log_every == 0 or step == total
                if do_log or do_val or do_ckpt:
                    check_finite(step)
                if do_log:
                    lval = float(ddp.all_mean(step_loss, info))
                    dt = max(time.perf_counter() - t0, 1e-9)
                    row = {"loss": lval, "loss_mean": float(acc_loss) / max(acc_n, 1), "lr": lr_used,
                           "img_per_s": imgs / dt, "epoch": epoch_of_step}
                    row.update({k: float(v) for k, v in (terms or {}).items()})
                    if fp16:
                        row["amp_scale"] = float(scaler.get_scale())
                    if logger is not None:
                        logger.log_train(step, row)
                    if bar is not None:
                        bar.set_postfix(loss=f"{lval:.4g}", img_s=f"{imgs / dt:.1f}")
                    acc_loss, acc_n, t0, imgs = zero.clone(), 0, time.perf_counter(), 0
                if bar is not None:
                    bar.update(1)
                if do_val:
                    vm: dict[str, float] = {}
                    if validator is not None and validator.enabled:
                        vm = validator.run(scored)
                        if logger is not None:
                            logger.log_val(step, vm)
                        key = validator.best_metric
                        if key in vm and validator.better(vm[key], best.get("value")):
                            best = {"metric": key, "value": vm[key], "step": step}
                            card = ck.make_card(method=name, scale=scale, step=step, kind="best", weights_file="",
                                                sha256="", config=cfg, config_sha256=chash, dataset=fingerprint,
                                                protocol=protocol_card, val_metrics=vm)
                            ck.write_best(run_dir, scored, card)
                    last_val = ddp.broadcast_object(vm, info)
                    best = ddp.broadcast_object(best, info)
                    ddp.barrier(info)
                if do_ckpt:
                    last_card = save(step, last_val if do_val else {})
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    if info.is_main:
        extra = {"ddp_find_unused_parameters": wrapper.history} if wrapper.history else {}
        _update_run_json(run_dir, status="finished", step=step, best=best, val_metrics=last_val, **extra)
    return TrainResult(run_dir=run_dir, step=step, last_card=last_card, best=best, val_metrics=last_val)
