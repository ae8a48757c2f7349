"""Helpers shared by the benchmarks (timing, reporting, synthetic faces)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Minimum wall time of ``repeat`` calls (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def report(benchmark: Any, name: str, **values: Any) -> None:
    benchmark.extra_info.update(values)
    print(f"\nPERF {name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in values.items()))


def absolute() -> bool:
    return os.environ.get("FSRBENCH_BENCH_ABSOLUTE", "") in ("1", "true", "yes")


def augment_faces(hr: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` synthetic 128x128 faces from real ones: flips, small shifts (edge padded), brightness/contrast
    jitter and mild noise (deterministic)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n,) + hr.shape[1:], dtype=np.uint8)
    for i in range(n):
        im = hr[i % len(hr)].astype(np.float32)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        dy, dx = rng.integers(-4, 5, 2)
        im = np.pad(im, ((4, 4), (4, 4), (0, 0)), mode="edge")[4 + dy:4 + dy + 128, 4 + dx:4 + dx + 128]
        im = (im - 128.0) * rng.uniform(0.85, 1.15) + 128.0 + rng.uniform(-12, 12)
        im = im + rng.normal(0, 2.0, im.shape)
        out[i] = np.clip(np.round(im), 0, 255).astype(np.uint8)
    return out


def write_folder(images: np.ndarray, folder: Path) -> Path:
    from fsrbench.imageio import write_png

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        write_png(folder / f"face_{i:05d}.png", im)
    return folder
