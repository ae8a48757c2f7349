"""Names -> ready components: methods set up for a scale, metrics set up on a device (datasets: the one
:func:`fsrbench.data.open_dataset`); the device, AMP and test-time priors.  Used by the evaluation runner, the cost profiler (``report/profile.py``) and anything
else that needs "the method ``edsr`` at x4 on this device, as ``fsrbench run`` would set it up".
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fsrbench import registry as reg
from fsrbench.api import Batch, Method, Metric
from fsrbench.cache import Cache
from fsrbench.data.priors import test_prior
from fsrbench.errors import PluginLoadError, RegistryError, Unavailable, unknown_name_message
from fsrbench.imageio import make_lr, to_tensor, upsample
from fsrbench.protocols import DEFAULT_PROTOCOL, Protocol, get_protocol

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
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device torch knows; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Unavailable(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: fsrbench runs on cpu, cuda, cuda:N or auto")
    return dev


def resolve_methods(names: list[str]) -> list[str]:
    """Expand ``all`` (every registered method with ``in_all``, plus broken plugins so they are reported)
    and check that every name exists (unknown names raise with 'did you mean')."""
    out: list[str] = []
    for n in names or ["all"]:
        if n == "all":
            loaded, broken = reg.methods.load_all()
            out += [m for m, cls in loaded.items() if getattr(cls, "in_all", True)] + sorted(broken)
        elif n not in reg.methods:
            raise RegistryError(unknown_name_message("methods", n, reg.methods.names()))
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def default_metric_names() -> list[str]:
    return reg.metrics.names()


def load_plugins(specs: list[str], log: Callable[[str], None], override: bool = False) -> list[dict[str, str]]:
    """Load ``--plugin`` specs; one that fails to import (or whose name is unsafe, or taken without
    ``override``) is registered as a broken method (reported as a "not evaluated" row) and returned as
    ``{"plugin", "name", "reason"}``."""
    errors = []
    for p in specs:
        try:
            reg.load_plugin(p, override=override)
        except PluginLoadError as exc:  # reported and skipped; the other methods still run
            name = p.rpartition(":")[2]
            errors.append({"plugin": p, "name": name, "reason": str(exc)})
            reg.register_broken("methods", name, f"plugin {p}", str(exc))
            log(f"plugin {p}: {exc}")
    return errors


@dataclass
class Components:
    """What every component of an evaluation shares: protocol, device, analysis cache, AMP, weight locations.

    :meth:`method` / :meth:`metrics` turn registry names into ready objects; :meth:`batch` builds the
    :class:`~fsrbench.api.Batch` a method receives (LR, upsampled input, test-time priors)."""

    protocol: Protocol
    device: Any
    cache: Cache = field(default_factory=Cache)
    amp: str = "none"
    checkpoint_dir: str | None = None
    weights: dict[str, str] = field(default_factory=dict)  # method name -> --weights path
    batch_timeout: float = 0.0  # seconds one batch of super_resolve may take (0: no limit); fsrbench.eval.isolate

    @classmethod
    def create(cls, protocol: str | Protocol = DEFAULT_PROTOCOL, device: str = "cpu", cache_dir: str | None = None,
               amp: str = "none", checkpoint_dir: str | None = None,
               weights: dict[str, str] | None = None, batch_timeout: float = 0.0) -> "Components":
        return cls(protocol=get_protocol(protocol), device=resolve_device(device),
                   cache=Cache(cache_dir) if cache_dir else Cache(), amp=amp, checkpoint_dir=checkpoint_dir,
                   weights=dict(weights or {}), batch_timeout=float(batch_timeout))

    # -- names -> ready objects -------------------------------------------------------------------
    def metrics(self, names: list[str] | None, options: dict[str, Any] | None = None,
                log: Callable[[str], None] = lambda msg: None) -> tuple[list[Metric], list[dict[str, Any]]]:
        """Metrics ``names`` (None: every registered one) set up on the device; (ready, skipped with reasons)."""
        out: list[Metric] = []
        skipped: list[dict[str, Any]] = []
        for name in names or default_metric_names():
            try:
                cls = reg.metrics.get(name)
            except PluginLoadError as exc:
                skipped.append({"metric": name, "reason": str(exc)})
                log(f"metric {name}: skipped ({exc})")
                continue
            try:
                m = cls(protocol=self.protocol, **dict(options or {}))
                m.setup(self.device)
            except Unavailable as exc:
                skipped.append({"metric": name, "reason": str(exc)})
                log(f"metric {name}: skipped ({exc})")
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - a broken metric plugin is reported, the run goes on
                why = f"{name} failed to set up: {type(exc).__name__}: {exc}"
                skipped.append({"metric": name, "reason": why})
                log(f"metric {name}: skipped ({why})")
                continue
            out.append(m)
        return out, skipped

    def method(self, name: str, scale: int) -> tuple[Method | None, str | None]:
        """Method ``name`` set up for ``scale`` (weights loaded), or (None, the reason it cannot run)."""
        try:
            cls = reg.methods.get(name)
        except PluginLoadError as exc:
            return None, str(exc)
        try:
            opts: dict[str, Any] = {}
            if self.checkpoint_dir:
                opts["checkpoint_dir"] = self.checkpoint_dir
            m = cls(**opts)
            if not m.supports(scale):
                return None, f"{name} does not support x{scale} (supports {', '.join(f'x{s}' for s in m.scales)})"
            m.setup(scale=scale, device=self.device, weights=self.weights.get(name))
            return m, None
        except Unavailable as exc:
            return None, str(exc)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken plugin (even one calling sys.exit) is reported
            return None, f"{name} failed to set up: {type(exc).__name__}: {exc}"

    # -- what a method receives ---------------------------------------------------------------------
    def test_priors(self, method: Method, hr: np.ndarray, lr: np.ndarray, up: np.ndarray) -> dict[str, Any]:
        """The test-time priors ``method.priors`` of a batch, computed from the LR only (``hr`` only for the
        oracle prior ``"hr"``)."""
        priors: dict[str, Any] = {}
        for name in method.priors:
            if name == "hr":
                priors["hr"] = to_tensor(hr, self.device)
                continue
            priors[name] = test_prior(name, hr=hr, lr=lr, upsampled=up, cache=self.cache, device=self.device)
        return priors

    def inputs(self, method: Method, hr: np.ndarray, given_lr: list[np.ndarray | None],
               scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR batch, upsampled batch) a method receives; see ``MULTIRES_INPUTS`` (eval.runner) for LR of
        other sizes than the model's."""
        size = self.protocol.hr_size
        down, upr = self.protocol.lr_generator, self.protocol.upsampler  # the protocol's resizers
        lr, up = [], []
        for h, g in zip(hr, given_lr):
            if g is None:
                x = make_lr(h, scale, resizer=down)
                lr.append(x)
                up.append(upsample(x, size, resizer=upr))
            elif scale == 0 or g.shape[0] == size // scale:  # native LR, or already the model's input size
                lr.append(g)
                up.append(upsample(g, size, resizer=upr))
            else:  # multi-resolution pair for a fixed-scale model
                x = make_lr(g, size=size // scale, resizer=down)
                lr.append(x)
                up.append(upsample(g if getattr(method, "input", "lr") == "upsampled" else x, size, resizer=upr))
        return np.stack(lr), np.stack(up)

    def batch(self, method: Method, ids: list[str], hr: np.ndarray, scale: int,
              given_lr: list[np.ndarray | None] | None = None) -> Batch:
        """The :class:`~fsrbench.api.Batch` of HR images ``hr`` [B,H,W,3] for ``method`` at ``scale``."""
        given_lr = given_lr or [None] * len(ids)
        lr, up = self.inputs(method, hr, given_lr, scale)
        return Batch(ids=list(ids), lr=to_tensor(lr, self.device), upsampled=to_tensor(up, self.device),
                     scale=scale, hr_size=self.protocol.hr_size, priors=self.test_priors(method, hr, lr, up))

    def autocast(self) -> Any:
        return autocast_context(self.device, self.amp)
