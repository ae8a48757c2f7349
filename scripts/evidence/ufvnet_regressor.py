"""UFVNet stage-1b evidence: on the first 40 faces-val images, the mean regressed fusion weights W per MR8 LR size
against the Eq. 4 target, and the soft cross-entropy against its floor (the target entropy).

Usage: .venv/bin/python scripts/evidence/ufvnet_regressor.py WEIGHTS.safetensors DATA_DIR [REGRESSOR_FC]
(stage-1b or stage-2 weights: only the regressor's tensors are read; DATA_DIR e.g. ../shared/data/faces-val;
REGRESSOR_FC: the regressor's hidden FC width, 4096 = AlexNet, 256 in the shipped reference weights)
"""
import glob
import sys

import numpy as np
import torch

from fsrbench.imageio import make_lr, read_image, to_tensor, upsample
from fsrbench.weights import load_partial
from fsrbench_baselines.ufvnet.model import UFVNetModel
from fsrbench_baselines.ufvnet.regressor import gt_weights, soft_cross_entropy

torch.set_num_threads(1)
if len(sys.argv) < 3:
    sys.exit(__doc__)
m = UFVNetModel(stage="1b", regressor_fc=int(sys.argv[3]) if len(sys.argv) > 3 else 4096)
load_partial(m, sys.argv[1])
m.eval()
hr = [read_image(f) for f in sorted(glob.glob(f"{sys.argv[2]}/*.png"))[:40]]
for s in (8, 16, 24, 32, 40, 48, 56, 64):
    x = to_tensor(np.stack([upsample(make_lr(h, size=s), 128) for h in hr]), "cpu") * 2 - 1
    with torch.no_grad():
        logits = m.regressor(x)
    w = torch.softmax(logits, 1).mean(0).numpy()
    t = gt_weights(torch.full((len(hr),), s / 128), m.anchor_rates)
    ce = float(soft_cross_entropy(logits, t))
    floor = float(-(t * t.log()).sum(1).mean())
    print(f"LR {s:2d}: W_pred {np.round(w, 3)} target {np.round(t[0].numpy(), 3)} CE {ce:.4f} (floor {floor:.4f})")
