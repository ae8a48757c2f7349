"""Paired PSNR/SSIM differences (method - bicubic) on the same faces-val images, from a `fsrbench run`
results directory's per_image.csv; 95% CI by fsrbench.stats.mean_ci. Usage: paired_vs_bicubic.py RUN_DIR

Multi-resolution runs (an ``lr_size`` column): every cell is compared with the bicubic cell on the same
(image, LR size) pairs, over all pairs and per LR size."""
import sys

import numpy as np
import pandas as pd

from fsrbench.stats import mean_ci

df = pd.read_csv(f"{sys.argv[1]}/per_image.csv", dtype={"image_id": str})
df = df[df.status == "ok"]
multires = "lr_size" in df.columns and df["lr_size"].notna().any()


def report(label: str, g: pd.DataFrame, b: pd.DataFrame) -> None:
    g, b = g.set_index("image_id"), b.set_index("image_id")
    ids = g.index.intersection(b.index)
    for m in ("psnr", "ssim"):
        d = (g.loc[ids, m] - b.loc[ids, m]).to_numpy(dtype=float)
        ci = mean_ci(d)
        print(f"{label} {m}: {np.mean(d):+.4f} [{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}] "
              f"n={len(d)} share>0 {np.mean(d > 0):.2f}")


for (scale, method), g in df.groupby(["scale", "method"]):
    if method == "bicubic":
        continue
    b = df[(df.method == "bicubic") & ((df.scale == 0) if multires else (df.scale == scale))]
    report(f"x{scale} {method:12s}", g, b)
    if multires:
        for size, part in g.groupby("lr_size"):
            report(f"x{scale} {method:12s} LR {int(size):2d}", part, b[b.lr_size == size])
