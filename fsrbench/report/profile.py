"""Cost of the run's methods: parameters, GMACs at 128x128 output, latency and peak memory -> OUT/profile.json.

Timings are not deterministic, so they live in ``profile.json`` beside (never inside) ``metrics.json``.

* **GMACs** — forward hooks on every ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d`` and ``Linear`` module of the
  method's ``.model`` while ``super_resolve`` runs once on a batch of 1 (LR of the protocol's size for the
  scale, 128x128 output).  Conv: ``out.numel() * in_channels/groups * prod(kernel)``; ConvTranspose:
  ``in.numel() * out_channels/groups * prod(kernel)``; Linear: ``out.numel() * in_features``.  Functional
  ops (matmul in attention, interpolation, norms, activations) are not counted — a lower bound, stated
  in the board.  Methods without a torch ``.model`` (bicubic) get no GMACs.
* **latency** — ``warmup`` untimed calls, then ``repeats`` timed calls of ``super_resolve`` (batch 1,
  ``time.perf_counter``; on CUDA with ``torch.cuda.synchronize()`` before and after); median in ms.
  Priors (landmarks etc.) are computed once beforehand and not timed.
* **peak memory** — CUDA: ``torch.cuda.max_memory_allocated`` during the timed calls minus the memory
  allocated before them.  CPU: [CHOICE profile.cpu_memory] the process RSS sampled every 1 ms by a thread
  during the timed calls, peak minus the RSS before them (activation memory; weights are already loaded
  and reported separately as ``model_mb``).
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fsrbench.data import open_dataset
from fsrbench.eval.components import Components, load_plugins
from fsrbench.protocols import DEFAULT_PROTOCOL
from fsrbench.results import atomic_write_bytes, json_bytes, load_json, run_lock

COUNTED = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear")


def count_macs(model: Any, fn: Callable[[], Any]) -> int:
    """Multiply-accumulates of the Conv/ConvTranspose/Linear modules of ``model`` while ``fn()`` runs."""
    import torch
    from torch import nn

    total = [0]

    def conv_hook(mod: Any, inp: Any, out: Any) -> None:
        k = int(np.prod(mod.kernel_size))
        total[0] += int(out.numel()) * (mod.in_channels // mod.groups) * k

    def convt_hook(mod: Any, inp: Any, out: Any) -> None:
        k = int(np.prod(mod.kernel_size))
        total[0] += int(inp[0].numel()) * (mod.out_channels // mod.groups) * k

    def linear_hook(mod: Any, inp: Any, out: Any) -> None:
        total[0] += int(out.numel()) * mod.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            handles.append(m.register_forward_hook(convt_hook))
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            fn()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


class _RssSampler:
    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> "_RssSampler":
        self.peak = _rss_bytes()
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_bytes())


def measure(method: Any, batch: Any, device: Any, warmup: int = 2, repeats: int = 10) -> dict[str, Any]:
    """Params, GMACs, latency and peak memory of one set-up method on one batch (see module docstring)."""
    import torch

    model = getattr(method, "model", None)
    is_torch = isinstance(model, torch.nn.Module)
    out: dict[str, Any] = {"params": None, "gmacs": None, "model_mb": None}
    if is_torch:
        out["params"] = int(sum(p.numel() for p in model.parameters()))
        out["model_mb"] = float(sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())) / 2**20)
        out["gmacs"] = count_macs(model, lambda: method.super_resolve(batch)) / 1e9
    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with torch.no_grad():
        for _ in range(warmup):
            method.super_resolve(batch)
        sync()
        times = []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                method.super_resolve(batch)
                sync()
                times.append((time.perf_counter() - t0) * 1000)
            out["peak_mem_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            with _RssSampler() as s:
                base = _rss_bytes()
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    method.super_resolve(batch)
                    times.append((time.perf_counter() - t0) * 1000)
            out["peak_mem_mb"] = max(0, s.peak - base) / 2**20
    out["latency_ms"] = statistics.median(times)
    out["latency_ms_min"] = min(times)
    out["latency_ms_max"] = max(times)
    return out


def profile_run(run_dir: str | Path, device: str = "cpu", repeats: int = 10, warmup: int = 2,
                log: Callable[[str], None] | None = None) -> Path:
    """Measure every (method, scale) of a results directory's run (from run.json) -> RUN_DIR/profile.json."""
    import platform

    import torch

    log = log or (lambda m: None)
    run_dir = Path(run_dir)
    rj = run_dir / "run.json"
    if not rj.is_file():
        raise FileNotFoundError(f"{rj} not found: profile needs the run's run.json (run `fsrbench run --out {run_dir}`)")
    with run_lock(run_dir):  # fail before measuring when a run is writing the directory
        pass
    run = load_json(rj)
    spec = run["spec"]
    load_plugins(spec.get("plugins") or [], log)
    comp = Components.create(spec.get("protocol") or DEFAULT_PROTOCOL, device, spec.get("cache_dir"), "none",
                             spec.get("checkpoint_dir"), spec.get("weights") or {})
    methods = run.get("resolved", {}).get("methods") or spec.get("methods") or ["all"]
    try:
        ds = open_dataset(spec["datasets"][0], **(spec.get("dataset_options") or {}))
        hr = ds.load(ds.ids()[0]).hr
    except Exception:  # noqa: BLE001 - any face image will do for timing
        ds = open_dataset("demo")
        hr = ds.load(ds.ids()[0]).hr
    entries = []
    for scale in [int(s) for s in spec.get("scales") or [4, 8]]:
        for name in methods:
            method, why = comp.method(name, scale)
            if method is None:
                entries.append({"method": name, "scale": scale, "skipped": why})
                continue
            try:
                batch = comp.batch(method, ["profile"], hr[None], scale)
                res = measure(method, batch, comp.device, warmup=warmup, repeats=repeats)
            except Exception as exc:  # noqa: BLE001
                entries.append({"method": name, "scale": scale, "skipped": f"{type(exc).__name__}: {exc}"})
                continue
            entries.append({"method": name, "scale": scale, **res})
            log(f"profile {name} x{scale}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items()
                                                           if isinstance(v, float) and math.isfinite(v)))
    doc = {"device": str(comp.device) + (f" ({torch.cuda.get_device_name()})" if comp.device.type == "cuda"
                                           else f" ({platform.processor() or platform.machine()}, "
                                                f"{torch.get_num_threads()} threads)"),
           "batch_size": 1, "warmup": warmup, "repeats": repeats,
           "gmacs_counts": "Conv/ConvTranspose/Linear modules only (lower bound)",
           "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "entries": entries}
    path = run_dir / "profile.json"
    with run_lock(run_dir):  # results are written under the directory's lock
        atomic_write_bytes(path, json_bytes(doc))
    return path
