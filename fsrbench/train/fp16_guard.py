"""Check fp16 safety without fp16 kernels: run under bfloat16 autocast and flag values fp16 cannot hold.

Autocast casts the same operations to the lower-precision type whether that type is float16 or bfloat16 (one
op list per device), so a bf16-autocast run executes exactly the ops an fp16 run would execute in reduced
precision.  bfloat16 has float32's range, fp16 does not (largest finite value 65504): :class:`Fp16RangeGuard`
records every reduced-precision op output whose finite values exceed it — where fp16 would have produced inf
and then NaN.  This is how the CPU tests and ``scripts/gpu_check.sh --dry-run`` check fp16 safety: real fp16
convolutions on a CPU without AVX512-FP16 run 70-180x slower than float32 (measured, docs/training.md).
It does not see fp16 underflow (the GradScaler's job) or rounding; the GPU check runs real fp16.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

FP16_MAX = 65504.0


class Fp16RangeGuard(TorchDispatchMode):
    """Within ``with Fp16RangeGuard() as g:``, ``g.overflows`` lists ``(op, max |value|)`` of every op whose
    float16/bfloat16 output holds a finite value beyond fp16's range (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.overflows: list[tuple[str, float]] = []
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        if "empty" in str(func):  # uninitialised memory, filled by the next op (which is checked)
            return out
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dtype in (torch.bfloat16, torch.float16) and t.numel():
                a = t.detach().abs()
                peak = float(torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype)).amax())
                if peak > FP16_MAX:
                    self.overflows.append((str(func), peak))
        return out
