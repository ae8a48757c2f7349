"""SR inference throughput of every trainable method on a CUDA GPU, float32 vs autocast (issue 14).

Skipped without CUDA (never part of ``make test``).  For each method at x8 (the paper-size network from its
``default`` preset, random initial weights: speed does not depend on the weights) it times
``forward_sr`` on batches of ``$FSRBENCH_GPU_BATCH`` (default 32) 128x128 outputs in float32, bf16 and fp16
autocast — what ``fsrbench run --device cuda --amp bf16|fp16`` runs — and reports images/s, the AMP
speed-up measured in the same run and the largest output difference to float32.  Run it with::

    .venv/bin/python -m pytest benchmarks/test_bench_gpu_inference.py --benchmark-only -s
"""
from __future__ import annotations

import os
import time
from typing import Any

import pytest

from benchutil import report

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (SR inference with AMP)")

METHODS = ["srcnn", "edsr", "sparnet", "fsrnet", "dic", "affectsrnet", "mpenet", "wnet", "ufvnet"]
BATCH = int(os.environ.get("FSRBENCH_GPU_BATCH", "32"))


def _method(name: str, scale: int) -> tuple[Any, Any]:
    from fsrbench.registry import registry
    from fsrbench.train.config import resolve_config

    method = registry("methods").get(name)()
    cfg = resolve_config(method, "default")
    model = method.build_model(scale, cfg).cuda().eval()
    return method, model


def _batch(scale: int, n: int) -> Any:
    import torch.nn.functional as F

    from fsrbench.api import Batch

    g = torch.Generator(device="cuda").manual_seed(0)
    lr = torch.rand(n, 3, 128 // scale, 128 // scale, device="cuda", generator=g)
    up = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    return Batch(ids=[str(i) for i in range(n)], lr=lr, upsampled=up, scale=scale, hr_size=128, priors={})


def _images_per_s(method: Any, model: Any, batch: Any, amp: str, repeat: int = 5) -> tuple[float, Any]:
    from fsrbench.eval.components import autocast_context

    with torch.no_grad(), autocast_context("cuda", amp):
        out = method.forward_sr(model, batch).float()  # warm-up (cuDNN autotune, allocations)
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            method.forward_sr(model, batch)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return batch.lr.shape[0] / best, out


@pytest.mark.parametrize("name", METHODS)
def test_gpu_sr_inference_amp(benchmark: Any, name: str) -> None:
    scale = 8
    method, model = _method(name, scale)
    batch = _batch(scale, BATCH)
    fp32, ref = _images_per_s(method, model, batch, "none")
    values: dict[str, Any] = {"batch": BATCH, "fp32_img_s": fp32}
    for amp in ("bf16", "fp16"):
        speed, out = _images_per_s(method, model, batch, amp)
        assert out.shape == ref.shape and bool(torch.isfinite(out).all()), f"{name} {amp}: non-finite output"
        values[f"{amp}_img_s"] = speed
        values[f"{amp}_speedup"] = speed / fp32
        values[f"{amp}_max_abs_diff"] = float((out - ref).abs().max())
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    report(benchmark, f"gpu-sr-inference {name} x{scale}", **values)
