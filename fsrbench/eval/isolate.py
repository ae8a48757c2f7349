"""Running a method's code so that it cannot end the run: a worker process per (method, scale) cell, a per-batch
time limit, and what a misbehaving method's call is turned into.

``fsrbench run --isolate auto|process|inline`` (``RunSpec.isolate``) decides where a method's code runs:

* ``process``: the method is constructed, set up and called in a worker process (:class:`IsolatedMethod`); the
  harness sends it each batch and receives the SR tensor.  ``sys.exit``, ``os._exit``, a segfault,
  ``KeyboardInterrupt`` raised by the method, or a hang (no answer within ``--batch-timeout`` seconds: the worker
  is killed) cost the batch's images, never the run.  The worker's stdout goes to stderr, so a plugin's prints
  never reach the leaderboard printed on stdout.
* ``inline``: the method runs in the harness's process; ``SystemExit`` and other ``BaseException``s raised by it
  are recorded like exceptions, and the batch time limit interrupts Python-level hangs (``SIGALRM``, main thread
  only).  ``os._exit`` or a hang inside native code still end the run, and a ``KeyboardInterrupt`` is taken as
  the user's Ctrl-C.
* ``auto`` (default) — [CHOICE] isolate.auto: ``inline`` for the methods of the fsrbench distribution (the
  built-ins: no worker start-up cost), ``process`` for every other method (``--plugin`` files, other installed
  packages: code the benchmark does not vouch for).

Why not the ``--workers`` (torchrun) ranks: each rank is a whole harness process holding the metrics, and
torchrun ends the whole job when one rank exits, so an ``os._exit`` in a rank would still end the run; a small
worker that holds only the method can die alone and be replaced.

After a batch times out, the method is not called again in that cell: its remaining images fail with "not run"
(a hung method would otherwise cost the time limit once per batch).  Batches and results travel between the
processes as ``torch.save`` bytes read back with ``weights_only=True`` (tensors and plain data only; values are
bit-identical to an inline call).
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from typing import Any, Iterator

from fsrbench import registry as reg
from fsrbench.cache import Cache
from fsrbench.errors import MethodCrashed, MethodRaised, MethodTimeout, PluginLoadError
from fsrbench.eval.components import Components
from fsrbench.protocols import get_protocol

ISOLATE_MODES = ("auto", "process", "inline")
#: [CHOICE] isolate.batch_timeout: seconds one batch of ``super_resolve`` may take (0 = no limit).  Ten minutes is
#: far above what any built-in needs for a batch of 16 faces on a CPU, and bounds a hang.
DEFAULT_BATCH_TIMEOUT = 600.0
#: seconds a worker may take to start and set its method up (imports, weights) when a batch limit is set; at least
#: the batch limit
SETUP_TIMEOUT = 300.0


def is_builtin(obj: Any) -> bool:
    """Whether ``obj`` (a registered class) belongs to the fsrbench distribution."""
    return str(reg.implementation_id(obj).get("version", "")).startswith("fsrbench==")


def choose_mode(mode: str, cls: Any) -> str:
    if mode not in ISOLATE_MODES:
        raise ValueError(f"--isolate {mode!r}: use one of {', '.join(ISOLATE_MODES)}")
    if mode != "auto":
        return mode
    return "inline" if is_builtin(cls) else "process"


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "the method") -> Iterator[None]:
    """Raise :class:`MethodTimeout` in the main thread when the block runs longer than ``seconds`` (inline mode;
    a no-op outside the main thread, without ``SIGALRM``, or for ``seconds <= 0``)."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise MethodTimeout(f"{what} gave no result within {seconds:g} s (--batch-timeout)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def call_guarded(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with a ``BaseException`` other than ``KeyboardInterrupt`` (the user's Ctrl-C in inline mode)
    turned into :class:`MethodRaised`, so ``except Exception`` handlers record it."""
    try:
        return fn(*args)
    except (Exception, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit, GeneratorExit ... from plugin code
        raise MethodRaised(_text(exc)) from None


# ------------------------------------------------------------------------------------------------
# the worker process
# ------------------------------------------------------------------------------------------------
def _pack(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _unpack(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _plain(obj: Any) -> Any:
    """JSON-like data only (what ``weights_only`` loading accepts): other values become strings."""
    import json

    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _die_with_parent() -> None:
    """Linux: the worker is killed when the process that started it ends (a killed run leaves no worker)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker(conn: Any, req: dict[str, Any]) -> None:  # pragma: no cover - runs in the worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
    _die_with_parent()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        os.dup2(2, 1)  # a plugin's prints never reach the harness's stdout
    sys.stdout = sys.stderr
    import torch

    from fsrbench.api import Batch

    torch.set_num_threads(int(req["threads"]))
    method = None
    try:
        target = req["target"]
        obj = reg.import_target(target[len("plugin "):] if target.startswith("plugin ") else target)
        reg.methods.register(req["name"], obj, f"isolated {target}", override=True)
        comps = Components(protocol=get_protocol(req["protocol"]), device=torch.device(req["device"]),
                           cache=Cache(None), amp=req["amp"], checkpoint_dir=req["checkpoint_dir"],
                           weights=dict(req["weights"]))
        method, why = comps.method(req["name"], int(req["scale"]))
    except BaseException as exc:  # noqa: BLE001
        why = f"{req['name']} failed to set up: {type(exc).__name__}: {exc}"
    if method is None:
        conn.send_bytes(_pack({"ok": False, "why": str(why)}))
        return
    info: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        info = dict(method.info())
    if "params" not in info and getattr(method, "model", None) is not None:
        with contextlib.suppress(Exception):
            info["params"] = int(sum(p.numel() for p in method.model.parameters()))
    attrs = {"priors": list(getattr(method, "priors", ()) or ()), "input": str(getattr(method, "input", "lr")),
             "any_scale": bool(getattr(method, "any_scale", False)),
             "scales": [int(s) for s in getattr(method, "scales", ())],
             "weights_card": getattr(method, "weights_card", None), "info": info}
    conn.send_bytes(_pack({"ok": True, "attrs": _plain(attrs)}))
    dev = comps.device
    while True:
        try:
            msg = _unpack(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if msg.get("op") != "sr":
            return
        try:
            batch = Batch(ids=list(msg["ids"]), lr=msg["lr"].to(dev), upsampled=msg["upsampled"].to(dev),
                          scale=int(msg["scale"]), hr_size=int(msg["hr_size"]),
                          priors={k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in msg["priors"].items()})
            with comps.autocast():
                out = method.super_resolve(batch)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"super_resolve returned {type(out).__name__}, expected a torch.Tensor")
            reply = {"ok": True, "sr": out.detach().cpu()}
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt ... are the method's
            reply = {"ok": False, "error": _text(exc)}
        conn.send_bytes(_pack(reply))


def _context() -> Any:
    """forkserver where it exists (workers fork from a clean, preloaded server: fast, and safe after torch/CUDA
    started threads in the harness), else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        with contextlib.suppress(Exception):
            ctx.set_forkserver_preload(["fsrbench.eval.isolate", "fsrbench.eval.components"])
        return ctx
    return mp.get_context("spawn")


def worker_target(name: str) -> str | None:
    """How a worker finds method ``name``: the ``--plugin`` spec it came from, or ``module:qualname`` of its
    class; None when neither can be imported elsewhere (e.g. a class defined inside a function)."""
    entry = reg.methods._entry(name)
    if entry.source.startswith("plugin "):
        return entry.source
    if isinstance(entry.target, str):
        return entry.target
    if hasattr(entry.target, "value") and hasattr(entry.target, "group"):  # an entry point
        return str(entry.target.value)
    obj = entry.load()
    qual = getattr(obj, "__qualname__", "")
    module = getattr(obj, "__module__", "")
    if not qual or "<locals>" in qual or module in ("__main__", "") or module.startswith("fsrbench_plugin_"):
        return None
    return f"{module}:{qual}"


def ready_method(components: Components, name: str, scale: int, mode: str = "auto") -> tuple[Any, str | None]:
    """Method ``name`` set up for ``scale`` where ``mode`` (see the module docstring) puts it: (method or
    :class:`IsolatedMethod`, None), or (None, the reason it cannot run).  A method whose class cannot be imported
    by a worker (defined inside a function, in ``__main__``) runs inline."""
    try:
        cls = reg.methods.get(name)
    except PluginLoadError as exc:
        return None, str(exc)
    target = worker_target(name) if choose_mode(mode, cls) == "process" else None
    if target is None:
        return components.method(name, scale)
    import torch

    proto = components.protocol
    request = {"name": name, "scale": int(scale), "target": target,
               "protocol": proto.path if getattr(proto, "path", None) else proto.id,
               "device": str(components.device), "amp": components.amp, "checkpoint_dir": components.checkpoint_dir,
               "weights": dict(components.weights), "threads": int(torch.get_num_threads())}
    proxy = IsolatedMethod(name, scale, request, components.batch_timeout)
    why = proxy.start()
    return (None, why) if why else (proxy, None)


class IsolatedMethod:
    """A set-up method living in a worker process (see the module docstring); behaves like a
    :class:`~fsrbench.api.Method` for the scorer and the runner.  A worker that crashed or timed out is replaced
    by a fresh one (set up again) at the next call."""

    def __init__(self, name: str, scale: int, request: dict[str, Any], timeout: float) -> None:
        self.name = name
        self.scale = scale
        self.request = request
        self.timeout = float(timeout)
        self.proc: Any = None
        self.conn: Any = None
        self.model = None
        self.priors: tuple[str, ...] = ()
        self.input = "lr"
        self.any_scale = False
        self.scales: tuple[int, ...] = ()
        self.weights_card: Any = None
        self._info: dict[str, Any] = {}

    # -- the Method surface ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def supports(self, scale: int) -> bool:
        return self.any_scale or scale in self.scales

    def super_resolve(self, batch: Any) -> Any:
        import torch

        if self.proc is None:
            why = self.start()
            if why:
                raise MethodCrashed(f"its worker process could not be set up again: {why}")
        msg = {"op": "sr", "ids": list(batch.ids), "lr": batch.lr.detach().cpu(),
               "upsampled": batch.upsampled.detach().cpu(), "scale": int(batch.scale), "hr_size": int(batch.hr_size),
               "priors": {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in batch.priors.items()}}
        reply = self._ask(msg)
        if not reply.get("ok"):
            raise MethodRaised(str(reply.get("error")))
        return reply["sr"]

    # -- the worker -----------------------------------------------------------------------------------------
    def start(self) -> str | None:
        """Start the worker and set the method up in it; returns None, or the reason it cannot run."""
        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker, args=(child, self.request), name=f"fsrbench-method-{self.name}")
        self.proc.start()
        child.close()
        try:
            reply = self._ask(None, max(self.timeout, SETUP_TIMEOUT) if self.timeout > 0 else 0)
        except (MethodTimeout, MethodCrashed) as exc:
            self.close()
            return f"{self.name} failed to set up in its worker process: {exc}"
        if not reply.get("ok"):
            self.close()
            return str(reply.get("why"))
        a = reply["attrs"]
        self.priors, self.input, self.any_scale = tuple(a["priors"]), a["input"], bool(a["any_scale"])
        self.scales, self.weights_card, self._info = tuple(a["scales"]), a["weights_card"], dict(a["info"])
        return None

    def _ask(self, msg: dict[str, Any] | None, timeout: float | None = None) -> dict[str, Any]:
        limit = self.timeout if timeout is None else timeout
        try:
            if msg is not None:
                self.conn.send_bytes(_pack(msg))
            if not self.conn.poll(limit if limit > 0 else None):
                self.close()
                what = "--batch-timeout" if timeout is None else "worker start-up and setup"
                raise MethodTimeout(f"{self.name} gave no result within {limit:g} s ({what}); its worker process "
                                    "was stopped")
            return _unpack(self.conn.recv_bytes())
        except (EOFError, OSError, BrokenPipeError):
            code = self._exit_code()
            self.close()
            raise MethodCrashed(f"{self.name}'s worker process ended (exit status {code}) during the call") from None

    def _exit_code(self) -> Any:
        if self.proc is None:
            return None
        self.proc.join(5)
        return self.proc.exitcode

    def close(self) -> None:
        """Stop the worker (asked to leave, then killed)."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.send_bytes(_pack({"op": "close"}))
            with contextlib.suppress(Exception):
                self.conn.close()
        if self.proc is not None:
            self.proc.join(2)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
        self.proc = self.conn = None

    def __del__(self) -> None:  # a worker never outlives its proxy
        with contextlib.suppress(Exception):
            self.close()
