"""MPENet per-step analysis (the paper's Table 3 layout): PSNR/SSIM of SR¹, SR², SR³ (the three unfolded
iterations) and of bicubic on faces-val, under the benchmark's protocol (dic-v1: Y channel, crop = scale).

Usage: .venv/bin/python scripts/evidence/mpenet_steps.py SCALE WEIGHTS DATA_DIR [LIMIT]
(WEIGHTS: a .safetensors / .card.json of MPENet, e.g. weights/fsrbench_weights/mpenet-x8.card.json;
DATA_DIR: a folder of 128² faces, e.g. ../shared/data/faces-val; LIMIT: first N images, default all).
Prints a markdown table; the paired Δ of each step against bicubic has its 95% CI.
"""
import glob
import os
import sys

import numpy as np
import torch

from fsrbench.api import Batch
from fsrbench.imageio import make_lr, read_image, tensor_to_uint8, to_tensor, upsample
from fsrbench.metrics.psnr_ssim import psnr, ssim
from fsrbench.stats import mean_ci
from fsrbench.weights import load_for_eval
from fsrbench_baselines.mpenet.method import MPENetMethod

torch.set_num_threads(1)
scale = int(sys.argv[1])
if len(sys.argv) < 4:
    sys.exit(__doc__)
weights, data = sys.argv[2], sys.argv[3]
limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
method = MPENetMethod()
model, card = load_for_eval(method, scale, weights=weights)
files = sorted(glob.glob(os.path.join(data, "*.png")))[:limit]
rows: dict[str, list[np.ndarray]] = {k: [] for k in ("bicubic", "SR1", "SR2", "SR3")}
ssims: dict[str, list[np.ndarray]] = {k: [] for k in rows}
for i in range(0, len(files), 10):
    hr = np.stack([read_image(f) for f in files[i:i + 10]])
    lr = np.stack([make_lr(h, scale) for h in hr])
    up = np.stack([upsample(x, hr.shape[1]) for x in lr])
    batch = Batch(ids=[str(j) for j in range(len(hr))], lr=to_tensor(lr), upsampled=to_tensor(up), scale=scale)
    with torch.no_grad():
        outs = [tensor_to_uint8(t) for t in method.forward_steps(model, batch)]
    for key, img in zip(rows, [up, *outs]):
        rows[key].append(psnr(img, hr, scale=scale))
        ssims[key].append(ssim(img, hr, scale=scale))
p = {k: np.concatenate(v) for k, v in rows.items()}
s = {k: np.concatenate(v) for k, v in ssims.items()}
print(f"MPENet x{scale}, {len(files)} images of {data}, weights {weights} (step {card.get('step')})\n")
print("| output | PSNR | SSIM | Δ PSNR vs bicubic [95% CI] |\n|---|---|---|---|")
for k in rows:
    d = mean_ci(p[k] - p["bicubic"])
    delta = "—" if k == "bicubic" else f"{d['value']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
    print(f"| {k} | {p[k].mean():.2f} | {s[k].mean():.4f} | {delta} |")
