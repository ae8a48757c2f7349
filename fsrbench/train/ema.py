"""Exponential moving average of the weights (config ``ema_decay``; BasicSR's ``net_g_ema``).

After every optimiser step that was taken (not one a GradScaler skipped): ``ema = decay·ema + (1−decay)·w``
for every parameter [CHOICE: no decay warm-up, as BasicSR]; the first update of a new run copies the live
weights instead [CHOICE], so weights a method loads inside its first training step (DIC's ``init_from``, the
MPENet/MPEGAN/UFVNet init keys) start the average rather than the random initialisation (a resumed run
restores the EMA and marks it started, so resume stays exact).  Buffers
(BatchNorm statistics, step counters, "initial weights loaded" flags) are copied from the live model
(``ema_buffers: copy``, default) or, for floating-point buffers, averaged like the parameters
(``ema_buffers: average``, timm's ModelEmaV2); integer buffers are always copied.

When on, the EMA model is what validation scores, what selects ``best.safetensors`` and what every
checkpoint's ``.safetensors`` holds (so evaluation loads it); the live weights travel in ``*.state.pt``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An EMA copy of ``model`` (the bare module, not a DDP/compile wrapper)."""

    def __init__(self, model: nn.Module, decay: float, buffers: str = "copy") -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        if buffers not in ("copy", "average"):
            raise ValueError(f"ema_buffers must be copy or average, got {buffers!r}")
        self.decay, self.buffers = float(decay), buffers
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.started = False  # the first update copies; a resumed run sets it (its EMA is restored)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.module.parameters()]
        live_p = [p.detach() for p in model.parameters()]
        if not self.started:
            self.started = True
            for e, w in zip(ema_p, live_p):
                e.copy_(w)
            for e, b in zip(self.module.buffers(), model.buffers()):
                e.copy_(b)
            return
        if ema_p:
            torch._foreach_lerp_(ema_p, live_p, 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            if self.buffers == "average" and e.is_floating_point():
                e.lerp_(b.to(e.dtype), 1.0 - self.decay)
            else:
                e.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()
