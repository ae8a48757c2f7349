"""The evaluation runner: plans the cells (datasets x scales x methods), keys them, resumes, gathers.

Scoring a cell (inputs, inference, per-image metrics, summaries) is :class:`fsrbench.eval.scorer.CellScorer`;
names -> ready methods/metrics/datasets is :mod:`fsrbench.eval.components`; the results-directory format
(layout, codecs, lock, provenance, gathering) is :mod:`fsrbench.results`.  The runner decides which cells to
score (a cell whose ``summary.json`` carries the same cell key is reused), shards batches over torchrun ranks,
and writes what the scorer returns.

A method that cannot run (no weights, unsupported scale, missing prior) is skipped with a one-line
reason; one bad image or one failing batch is recorded per image and the run goes on.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fsrbench import registry as reg
from fsrbench.api import Dataset, Method, Metric
from fsrbench.data import open_dataset
from fsrbench.data.multires import MultiRes, lr_sizes, pair_id, split_pair_id
from fsrbench.dist import Group, local_rank
from fsrbench.errors import PluginLoadError, RegistryError, unknown_name_message
from fsrbench.eval.components import Components, load_plugins, resolve_methods
from fsrbench.eval.isolate import DEFAULT_BATCH_TIMEOUT, ISOLATE_MODES, IsolatedMethod, ready_method
from fsrbench.eval.scorer import Cell, CellScorer
from fsrbench.protocols import DEFAULT_PROTOCOL, Protocol, get_protocol
from fsrbench.results import (ID_COLUMNS, STATUS_COLUMNS, CellError, atomic_write_bytes, cell_dir, cell_dirs,
                              check_writable, clean_stale, gather, json_bytes, jsonable, load_json, provenance,
                              run_lock, slug, sr_dir, verify_cell, write_cell)
from fsrbench.recipes import resolve_config
from fsrbench.weights import weights_provenance

__all__ = ["MULTIRES_INPUTS", "RunResult", "RunSpec", "Runner", "by_lr_size", "default_out", "run"]

# Multi-resolution runs (--multires): how an LR of any size s reaches each kind of method (version of the rule,
# part of every multi-resolution cell key).  any_scale methods: the LR itself (cell scale 0, "native");
# fixed-scale methods, cell scale S: the LR is PIL-bicubic resized to the model's input size 128/S ("FR" input,
# UFVNet Table I) and methods with input="upsampled" receive the LR bicubic-upsampled straight to 128 ("OR"
# input, Table II).  Metrics crop round(128/s) pixels per side for every method (protocols that crop `scale`).
MULTIRES_INPUTS = "v1: native | fr: pil-bicubic lr->128/S | or: pil-bicubic lr->128; crop round(128/s)"


@dataclass
class RunSpec:
    """Everything that defines a run (stored in run.json)."""

    methods: list[str] = field(default_factory=lambda: ["all"])
    datasets: list[str] = field(default_factory=lambda: ["demo"])
    scales: list[int] = field(default_factory=lambda: [4, 8])
    metrics: list[str] | None = None  # None: every registered metric that can run here
    protocol: str = DEFAULT_PROTOCOL
    out: str = ""
    batch_size: int = 16
    device: str = "cpu"
    force: bool = False
    strict: bool = False
    weights: dict[str, str] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    plugins: list[str] = field(default_factory=list)
    plugin_override: bool = False  # a --plugin may replace a registered component of the same name
    save_sr: bool = True
    limit: int | None = None
    seed: int = 0
    metric_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"fer": "mini-xception"}
    dataset_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"data_root": ..., "split": "test"}
    cache_dir: str | None = None  # analysis cache (default ~/.cache/fsrbench or $FSRBENCH_CACHE)
    progress: bool = True
    amp: str = "none"  # autocast precision for SR inference: none | bf16 | fp16 (part of every cell key)
    multires: str | None = None  # MR3 | MR7 | MR8: every image at every LR size of the set (UFVNet protocol)
    isolate: str = "auto"  # where a method's code runs: auto | process | inline (fsrbench.eval.isolate)
    batch_timeout: float = DEFAULT_BATCH_TIMEOUT  # seconds one batch of super_resolve may take (0: no limit)


@dataclass
class RunResult:
    out: Path
    per_image: pd.DataFrame
    metrics: dict[str, Any]
    computed: list[tuple[str, int, str]]
    cached: list[tuple[str, int, str]]
    skipped: list[dict[str, Any]]
    failures: list[dict[str, Any]]

    @property
    def exit_code_strict(self) -> int:
        return 1 if (self.skipped or self.failures) else 0


# ------------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------------
class Runner:
    """Plans, keys, resumes and gathers one run of :class:`RunSpec` (see the module docstring)."""

    scorer_class = CellScorer  # scores each cell (a subclass may time or instrument it)

    def __init__(self, spec: RunSpec, log: Any = None, on_results: Any = None) -> None:
        self.spec = spec
        # called with the RunResult while the lock is still held (the CLI writes leaderboard.md there)
        self.on_results = on_results
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.protocol: Protocol = get_protocol(spec.protocol)
        validate_spec(spec, self.protocol)
        self.plugin_errors: list[dict[str, str]] = load_plugins(spec.plugins, self.log, spec.plugin_override)
        self.out = Path(spec.out or default_out(spec)).expanduser()
        self.group = Group()
        if not self.group.is_main:
            self.log = lambda msg: None  # rank 0 speaks for the run
        device = spec.device
        if self.group.world > 1 and device in ("cuda", "auto"):
            device = f"cuda:{local_rank()}" if device == "cuda" else device
        self.components = Components.create(self.protocol, device, spec.cache_dir, spec.amp, spec.checkpoint_dir,
                                            spec.weights, spec.batch_timeout)
        self.device = self.components.device
        if self.group.world > 1 and self.device.type == "cuda":
            import torch

            torch.cuda.set_device(self.device)
        self.cache = self.components.cache
        if spec.multires:
            lr_sizes(spec.multires)  # unknown set names fail here, before any work
        self.skipped: list[dict[str, Any]] = []
        self.metric_skipped: list[dict[str, Any]] = []
        self.computed: list[tuple[str, int, str]] = []
        self.cached: list[tuple[str, int, str]] = []

    # -- setup ------------------------------------------------------------------------------------
    def _metrics(self) -> list[Metric]:
        out, skipped = self.components.metrics(self.spec.metrics, self.spec.metric_options, self.log)
        self.metric_skipped += skipped
        if not out:
            raise ValueError("no metric can run; see the reasons above")
        return out

    def cell_dir(self, dataset: str, scale: int, method: str) -> Path:
        return cell_dir(self.out, dataset, scale, method)

    def sr_dir(self, dataset: str, scale: int, method: str) -> Path:
        return sr_dir(self.out, dataset, scale, method)

    # -- main loop --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        g = self.group
        with contextlib.ExitStack() as stack:
            err = None
            if g.is_main:
                try:
                    check_writable(self.out)
                    stack.enter_context(run_lock(self.out))
                except ValueError as exc:
                    err = str(exc)
            err = g.broadcast(err)
            if err:
                raise ValueError(err)
            try:
                return self._run_locked()
            finally:
                g.barrier()

    def _run_locked(self) -> RunResult:
        t0 = time.time()
        if self.group.is_main:
            clean_stale(self.out)  # we hold the lock: no one else writes
        self.group.barrier()
        metrics = self._metrics()
        self.scorer = self.scorer_class(self.components, metrics, dict(self.spec.metric_options, seed=self.spec.seed),
                                 progress=self.spec.progress)
        method_names = self._resolve_methods()
        for name in self.spec.weights:
            if name not in method_names:
                if name not in reg.methods:
                    raise RegistryError(f"--weights {name}=...: " + unknown_name_message("methods", name,
                                                                                        reg.methods.names()))
                raise ValueError(f"--weights {name}=...: {name} is not one of this run's methods "
                                 f"({', '.join(method_names)}); add it to --methods or drop that --weights")
        datasets = []
        for dspec in self.spec.datasets:
            ds = self._open_dataset(dspec)
            for f, why in ds.skipped:
                self.log(f"{ds.display_name}: skipped {f}: {why}")
            if self.spec.multires:
                ds = MultiRes(ds, self.spec.multires)
            same = [d for d in datasets if d.display_name == ds.display_name]
            if same:
                raise ValueError(f"--datasets {dspec!r} and another spec both open {ds.display_name!r}; their "
                                 "cells would share one folder: give them different splits or drop one")
            datasets.append(ds)
        self._check_explicit_weights(method_names)
        self._write_run_json(metrics, method_names, datasets, started=t0, finished=None)
        plan = [(ds, s, m) for ds in datasets for m in method_names for s in self._cell_scales(m)]
        plan.sort(key=lambda c: (datasets.index(c[0]), c[1], method_names.index(c[2])))
        self._check_other_cells({self.cell_dir(ds.display_name, s, m) for ds, s, m in plan})
        self.log(f"fsrbench run: {len(datasets)} dataset(s) x {len(self.spec.scales)} scale(s) x "
                 f"{len(method_names)} method(s) = {len(plan)} cells"
                 f"{f' (multi-resolution {self.spec.multires.upper()})' if self.spec.multires else ''}; metrics: "
                 f"{', '.join(m.name for m in metrics)}; protocol {self.protocol.id} ({self.protocol.short_hash}); "
                 f"results in {self.out}")
        for ds, scale, mname in plan:
            self._run_cell(ds, scale, mname, metrics)
            self.group.barrier()
        if not self.group.is_main:
            return RunResult(self.out, pd.DataFrame(), {}, self.computed, self.cached, self.skipped, [])
        result = self._gather()
        if self.on_results is not None:
            self.on_results(result)
        if self.cache.bad_entries:
            self.log(f"analysis cache {self.cache.root}: {self.cache.bad_entries} unreadable or mismatching entries "
                     "were recomputed and replaced")
        self._write_run_json(metrics, method_names, datasets, started=t0, finished=time.time())
        return result

    def _check_other_cells(self, planned: set[Path]) -> None:
        """Before any work: every stored cell this run will not (re)compute must verify, since the gathered
        files include it; a damaged one stops the run with its folder and the fix (a planned one is simply
        recomputed)."""
        if not self.group.is_main:
            return
        for d in cell_dirs(self.out):
            if d in planned:
                continue
            try:
                verify_cell(d)
            except CellError as exc:
                rel = d.relative_to(self.out / "cells")
                raise ValueError(f"{d}: damaged cell ({exc}); this run does not recompute it but gathers every cell "
                                 f"of {self.out}: run its method, dataset and scale ({rel}) again with the same "
                                 f"--out, or delete that folder") from None

    @staticmethod
    def _split_size(ds: Dataset) -> int:
        """How many images the cell's split holds (its list, present or not): a cell on fewer (``--limit``, missing
        files) is marked partial on the boards.  A multi-resolution set holds every base image at every size."""
        base = ds.base if isinstance(ds, MultiRes) else ds
        n = getattr(base, "split_size", None)
        n = int(n) if isinstance(n, int) else len(base.ids())
        return n * len(ds.sizes) if isinstance(ds, MultiRes) else n

    def _provenance(self, method: Any, name: str) -> dict[str, Any]:
        """Whether the method's weights are comparable with the papers' numbers (:func:`fsrbench.weights.
        weights_provenance`; the paper recipe is the ``default`` training preset of the method's class, read from
        its YAML: an isolated method's class is asked, its code is not run here)."""
        card = getattr(method, "weights_card", None)
        paper = None
        if isinstance(card, dict) and card.get("kind") in ("step", "best"):
            with contextlib.suppress(Exception):
                paper = resolve_config(self._method_class(name), "default")
        return weights_provenance(card, paper)

    def _resolve_methods(self) -> list[str]:
        return resolve_methods(self.spec.methods)

    def _method_class(self, name: str) -> Any:
        """The class behind method ``name`` (its implementation identity is part of every cell key)."""
        return reg.methods.get(name)

    def _ready_method(self, name: str, scale: int) -> tuple[Any, str | None]:
        """Method ``name`` set up for ``scale`` where ``--isolate`` puts it (:func:`fsrbench.eval.isolate.
        ready_method`): (method, None) or (None, why)."""
        return ready_method(self.components, name, scale, self.spec.isolate)

    def _open_dataset(self, spec: str) -> Dataset:
        return open_dataset(spec, **self.spec.dataset_options)

    def _check_explicit_weights(self, method_names: list[str]) -> None:
        """``--weights METHOD=PATH`` that cannot be loaded at one of the run's scales is an error (exit 2) before any
        cell is scored, not a "not evaluated" row: the user asked for exactly these weights."""
        for mname, path in self.spec.weights.items():
            if mname not in method_names:
                continue
            for scale in self._cell_scales(mname):
                # set up where the run would set it up (--isolate): a plugin's code stays in its worker
                method, why = self._ready_method(mname, scale)
                if isinstance(method, IsolatedMethod):
                    method.close()
                if method is None:
                    raise ValueError(f"--weights {mname}={path} cannot be used at x{scale}: {why}")

    def _cell_scales(self, name: str) -> list[int]:
        """The cells of a method. Multi-resolution runs give an ``any_scale`` method one cell, ``scale = 0``
        ("native": each LR at its own size), and a fixed-scale method one cell per model scale of
        ``--scales`` (its x4 model, its x8 model, ... on the same inputs: UFVNet Tables I-II)."""
        if not self.spec.multires:
            return list(self.spec.scales)
        try:
            cls = reg.methods.get(name)
        except PluginLoadError:
            return list(self.spec.scales)[:1]  # reported as skipped once, by _run_cell
        return [0] if getattr(cls, "any_scale", False) else list(self.spec.scales)

    def _cell_ids(self, ds: Dataset) -> list[str]:
        """The images of a cell; ``--limit N`` keeps the first N images (of a multi-resolution set: the first N
        base images at every LR size).  Multi-resolution cells run size by size (batches of one LR size)."""
        if isinstance(ds, MultiRes):
            base = ds.base.ids()[: self.spec.limit] if self.spec.limit else ds.base.ids()
            return [pair_id(i, s) for s in ds.sizes for i in base]
        ids = ds.ids()
        return ids[: self.spec.limit] if self.spec.limit else ids

    def _cell_key(self, ds: Dataset, ids: list[str], scale: int, method: str, m: Method,
                  metrics: list[Metric]) -> str:
        return hashlib.sha256(json.dumps(self._cell_inputs(ds, ids, scale, method, m, metrics), sort_keys=True,
                                         default=str).encode()).hexdigest()

    def _cell_inputs(self, ds: Dataset, ids: list[str], scale: int, method: str, m: Method,
                     metrics: list[Metric]) -> dict[str, Any]:
        """What a cell's key is the hash of (stored beside the key, so a recomputation can say what changed)."""
        card = getattr(m, "weights_card", None) or {}
        base = ds.base if isinstance(ds, MultiRes) else ds
        key = {
            "protocol": self.protocol.sha256,
            "dataset": ds.display_name,
            "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "scale": scale,
            "method": method,
            "weights": card.get("sha256") if isinstance(card, dict) else None,
            "metrics": [[mm.name, sorted(mm.options.items())] for mm in metrics],
            # which code: a plugin that took a built-in's name never shares its cells (docs/reliability.md)
            "implementation": {"method": reg.implementation_id(self._method_class(method)),
                               "metrics": [reg.implementation_id(mm) for mm in metrics],
                               "dataset": reg.implementation_id(base)},
        }
        if self.spec.amp != "none":  # fp32 keys stay as they were (stored results keep their keys)
            key["amp"] = self.spec.amp
        if isinstance(ds, MultiRes):  # how LR of any size reaches each kind of method (docs/multires.md)
            key["multires_inputs"] = MULTIRES_INPUTS
        return json.loads(json.dumps(key, sort_keys=True, default=str))

    def _run_cell(self, ds: Dataset, scale: int, mname: str, metrics: list[Metric]) -> None:
        dname = ds.display_name
        cdir = self.cell_dir(dname, scale, mname)
        ids = self._cell_ids(ds)
        method, why = self._ready_method(mname, scale)
        if method is None and mname in self.spec.weights:  # asked for explicitly: no skip
            raise ValueError(f"--weights {mname}={self.spec.weights[mname]} cannot be used at x{scale}: {why}")
        if method is None:
            self.skipped.append({"dataset": dname, "scale": scale, "method": mname, "reason": why})
            self.log(f"skip {mname} x{scale} on {dname}: {why}")
            return
        try:
            self._score_and_write(ds, ids, scale, mname, method, metrics, cdir)
        finally:
            close = getattr(method, "close", None)
            if isinstance(method, IsolatedMethod) and close is not None:
                close()  # stop its worker process

    def _score_and_write(self, ds: Dataset, ids: list[str], scale: int, mname: str, method: Any,
                         metrics: list[Metric], cdir: Path) -> None:
        dname = ds.display_name
        inputs = self._cell_inputs(ds, ids, scale, mname, method, metrics)
        key = self._cell_key(ds, ids, scale, mname, method, metrics)
        if cdir.is_dir() and not self.spec.force:
            try:
                stored = verify_cell(cdir)
            except CellError as exc:  # damaged: recomputed (and replaced) like a missing cell
                self.log(f"recomputing {mname} x{scale} on {dname}: its stored cell is damaged ({exc})")
            else:
                if stored.get("cell_key") == key:
                    self.cached.append((dname, scale, mname))
                    self.log(f"done already: {mname} x{scale} on {dname} (use --force to recompute)")
                    return
                self.log(f"recomputing {mname} x{scale} on {dname}: its inputs changed "
                         f"({changed_inputs(stored, inputs, self.protocol.id)}); the stored cell is replaced")
        srdir = self.sr_dir(dname, scale, mname)
        if self.group.is_main:
            if self.spec.force or not (srdir / "KEY").is_file() or (srdir / "KEY").read_text() != key:
                shutil.rmtree(srdir, ignore_errors=True)
            if self.spec.save_sr:
                srdir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(srdir / "KEY", key.encode())
        self.group.barrier()
        cell = Cell(dname, scale, mname, method, srdir if self.spec.save_sr else None)
        scored = self.scorer.score_cell(ds, ids, cell, self.spec.batch_size, self.group.rank, self.group.world)
        rows, failures, notes = scored.rows, scored.failures, scored.notes
        if self.group.world > 1:
            merged = self._exchange_shards(f"{slug(dname)}-x{scale}-{slug(mname)}", rows, failures, notes)
            if merged is None:
                return  # rank > 0: rank 0 writes the cell
            rows, failures, notes = merged
        order = {sid: i for i, sid in enumerate(ids)}
        rows.sort(key=lambda r: order[r["image_id"]])
        failures.sort(key=lambda f: order[f["image_id"]])
        columns = self.scorer.columns
        id_columns = list(ID_COLUMNS)
        if isinstance(ds, MultiRes):
            id_columns.append("lr_size")
            for r in rows:
                r["lr_size"] = split_pair_id(r["image_id"])[1]
        table = pd.DataFrame(rows, columns=id_columns + STATUS_COLUMNS + columns)
        ok = table[table["status"] == "ok"]
        summaries, summary_notes = self.scorer.summarize(ok, cell)
        notes += summary_notes
        info = {}
        with contextlib.suppress(Exception):
            info = dict(method.info())
        if "params" not in info and getattr(method, "model", None) is not None:
            with contextlib.suppress(Exception):
                info["params"] = int(sum(p.numel() for p in method.model.parameters()))
        summary = {
            "cell_key": key, "cell_inputs": inputs, "dataset": dname, "scale": scale, "method": mname,
            "protocol": self.protocol.card(), "n_images": int(len(table)), "n_failed": int(len(failures)),
            "n_split": self._split_size(ds), "weights_provenance": self._provenance(method, mname),
            "failures": failures, "metrics": summaries, "method_info": info, "notes": sorted(set(notes)),
            "weights": getattr(method, "weights_card", None),
        }
        if self.spec.amp != "none":
            summary["amp"] = self.spec.amp
        if isinstance(ds, MultiRes):
            summary["multires"] = {"set": ds.mr, "lr_sizes": list(ds.sizes), "inputs": MULTIRES_INPUTS,
                                   "model_scale": scale or None, "input": getattr(method, "input", "lr")}
            summary["by_lr_size"] = by_lr_size(ok, columns)
        write_cell(self.out, cdir, table, summary)
        self.computed.append((dname, scale, mname))
        head = ", ".join(f"{k}={v['value']:.4g}" for k, v in summaries.items()
                         if isinstance(v.get("value"), float))
        self.log(f"{mname} x{scale} on {dname}: {len(table) - len(failures)}/{len(table)} images; {head}")
        for f in failures[:10]:  # every failure is in per_image.csv and metrics.json; the first ones here too
            self.log(f"  failed {f['image_id']}: {f['reason']}")
        if len(failures) > 10:
            self.log(f"  ... and {len(failures) - 10} more failed images (see per_image.csv)")

    def _exchange_shards(self, cell: str, rows: list[dict[str, Any]], failures: list[dict[str, Any]],
                         notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]] | None:
        """Every rank writes its rows; rank 0 reads them all back (exact floats via JSON repr)."""
        d = self.out / ".shards" / cell
        d.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "failures": failures, "notes": notes}
        atomic_write_bytes(d / f"rank-{self.group.rank}.json",
                           json.dumps(payload, default=jsonable, allow_nan=True).encode())
        self.group.barrier()
        if not self.group.is_main:
            return None
        all_rows: list[dict[str, Any]] = []
        all_fail: list[dict[str, Any]] = []
        all_notes: list[str] = []
        for r in range(self.group.world):
            part = json.loads((d / f"rank-{r}.json").read_text())
            all_rows += part["rows"]
            all_fail += part["failures"]
            all_notes += part["notes"]
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            d.parent.rmdir()  # .shards, once empty
        return all_rows, all_fail, all_notes

    # -- gathering --------------------------------------------------------------------------------
    def _gather(self) -> RunResult:
        per_image, metrics_doc, skipped = gather(self.out, self.protocol.card(), self.skipped, self.metric_skipped)
        failures = [dict(f, dataset=d["dataset"], scale=d["scale"], method=d["method"])
                    for d in metrics_doc["cells"] for f in d.get("failures", [])]
        return RunResult(self.out, per_image, metrics_doc, self.computed, self.cached, skipped, failures)

    def _write_run_json(self, metrics: list[Metric], methods: list[str], datasets: list[Dataset],
                        started: float, finished: float | None) -> None:
        if not self.group.is_main:
            return
        doc = {
            "spec": asdict(self.spec),
            "resolved": {"methods": methods, "metrics": [m.name for m in metrics],
                         "datasets": [d.fingerprint() for d in datasets], "device": str(self.device),
                         "ranks": self.group.world},
            "protocol": dict(self.protocol.card(), definition=self.protocol.definition),
            **provenance(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)) if finished else None,
            "analysis_cache": {"dir": str(self.cache.root) if self.cache.root else None, "hits": self.cache.hits,
                               "misses": self.cache.misses, "bad_entries_replaced": self.cache.bad_entries},
        }
        atomic_write_bytes(self.out / "run.json", json_bytes(doc))


def _positive_int(value: Any, option: str, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{option} must be a whole number of at least 1, got {value!r}; {fix}")


def validate_spec(spec: RunSpec, protocol: Protocol) -> None:
    """ValueError naming the option and the fix for a run that cannot be meant: empty --methods/--datasets/
    --metrics/--scales, scales the protocol cannot evaluate, --limit/--batch-size below 1, a negative
    --batch-timeout, an unknown --isolate (devices are checked when resolved, --weights against the methods)."""
    for option, values, fix in (("--methods", spec.methods, "name at least one method, or all"),
                                ("--datasets", spec.datasets, "name at least one dataset, e.g. demo"),
                                ("--scales", spec.scales, "give at least one scale, e.g. 4,8")):
        if not values or any(isinstance(v, str) and not v.strip() for v in values):
            raise ValueError(f"{option} is empty (got {','.join(map(str, values or []))!r}); {fix}")
    if spec.metrics is not None and (not spec.metrics or any(not str(m).strip() for m in spec.metrics)):
        raise ValueError(f"--metrics is empty (got {','.join(spec.metrics)!r}); name at least one metric, or leave "
                         "the option out for every metric")
    for s in spec.scales:
        protocol.lr_size(s)
    if spec.limit is not None:
        _positive_int(spec.limit, "--limit", "leave the option out to use every image")
    _positive_int(spec.batch_size, "--batch-size", "e.g. --batch-size 16")
    if not isinstance(spec.batch_timeout, (int, float)) or not spec.batch_timeout >= 0:
        raise ValueError(f"--batch-timeout must be a number of seconds >= 0 (0 = no limit), got {spec.batch_timeout!r}")
    if spec.isolate not in ISOLATE_MODES:
        raise ValueError(f"--isolate {spec.isolate!r}: use one of {', '.join(ISOLATE_MODES)}")


#: how each part of a cell key is named when it changed
_INPUT_NAMES = {"protocol": "protocol", "dataset": "dataset", "ids": "image ids", "scale": "scale",
                "method": "method", "weights": "weights", "metrics": "metrics or their options", "amp": "--amp",
                "multires_inputs": "multi-resolution input rule", "implementation": "implementation"}


def _changed_implementations(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The parts of a cell key's ``implementation`` (issue 24: which code) that changed, metrics matched by name (a
    metric added or dropped is already "metrics or their options")."""
    oi, ni = old.get("implementation"), new.get("implementation")
    if not isinstance(oi, dict) or not isinstance(ni, dict):
        return ["implementation of the method, metrics and dataset"] if oi != ni else []
    out = [f"{part} implementation" for part in ("method", "dataset") if oi.get(part) != ni.get(part)]

    def by_name(inputs: dict[str, Any], impl: dict[str, Any]) -> dict[str, Any]:
        names = [m[0] if isinstance(m, list) and m else m for m in inputs.get("metrics") or []]
        return dict(zip(names, impl.get("metrics") or []))

    om, nm = by_name(old, oi), by_name(new, ni)
    out += [f"{name} implementation" for name in nm if name in om and om[name] != nm[name]]
    return out


def changed_inputs(old_summary: dict[str, Any], new: dict[str, Any], protocol_id: str = "") -> str:
    """Which inputs of a cell differ between a stored cell (its summary.json) and now, in words."""
    parts = []
    old_proto = (old_summary.get("protocol") or {}).get("id") if isinstance(old_summary.get("protocol"), dict) else None
    old = old_summary.get("cell_inputs")
    if not isinstance(old, dict):
        if old_proto and protocol_id and old_proto != protocol_id:
            return f"protocol {old_proto} -> {protocol_id}; use another --out to keep both"
        return "the stored cell does not record its inputs (written by an older fsrbench)"
    order = list(_INPUT_NAMES)
    for k in sorted(set(old) | set(new), key=lambda k: order.index(k) if k in order else len(order)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        label = _INPUT_NAMES.get(k, k)
        if k == "implementation":
            parts.extend(_changed_implementations(old, new))
        elif k == "protocol":
            parts.append(f"protocol {old_proto or str(a)[:12]} -> {protocol_id or str(b)[:12]}; use another --out "
                         "to keep both")
        elif k == "weights":
            parts.append(f"weights or SR files sha256 {str(a)[:12]} -> {str(b)[:12]}")
        elif k in ("scale", "dataset", "method", "amp"):
            parts.append(f"{label} {a} -> {b}")
        else:
            parts.append(label)
    return ", ".join(parts) or "nothing recorded differs"


def by_lr_size(ok: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, float]]:
    """Mean of every numeric metric column per LR size (finite values only) of a multi-resolution cell."""
    out: dict[str, dict[str, float]] = {}
    for size, part in ok.groupby("lr_size", sort=True):
        row: dict[str, float] = {"n": int(len(part))}
        for c in columns:
            v = pd.to_numeric(part[c], errors="coerce").to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                row[c] = float(v.mean())
        out[str(int(size))] = row
    return out


def default_out(spec: RunSpec) -> str:
    ds = "+".join(slug(d) for d in spec.datasets)
    return str(Path("runs") / f"{ds}_{spec.protocol}")


def run(spec: RunSpec, log: Any = None, on_results: Any = None) -> RunResult:
    """Run ``spec``; ``on_results(result)`` (optional) runs on rank 0 after the gathered files are written, while
    the results directory is still locked — files derived from them (``leaderboard.md``) belong there."""
    return Runner(spec, log=log, on_results=on_results).run()
