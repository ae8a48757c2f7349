"""Paired PSNR/SSIM differences (method - bicubic) on the same faces-val images, from a `fsrbench run`
results directory's per_image.csv; 95% CI by fsrbench.metrics.stats.mean_ci. Usage: paired_vs_bicubic.py RUN_DIR"""
import sys

import numpy as np
import pandas as pd

from fsrbench.metrics.stats import mean_ci

df = pd.read_csv(f"{sys.argv[1]}/per_image.csv")
df = df[df.status == "ok"]
for (scale, method), g in df.groupby(["scale", "method"]):
    if method == "bicubic":
        continue
    b = df[(df.scale == scale) & (df.method == "bicubic")].set_index("image_id")
    g = g.set_index("image_id")
    ids = g.index.intersection(b.index)
    for m in ("psnr", "ssim"):
        d = (g.loc[ids, m] - b.loc[ids, m]).to_numpy(dtype=float)
        ci = mean_ci(d)
        print(f"x{scale} {method:12s} {m}: {np.mean(d):+.4f} [{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}] "
              f"n={len(d)} share>0 {np.mean(d > 0):.2f}")
