#!/usr/bin/env bash
# Evidence evaluation with the full metric set (PSNR, SSIM, LPIPS, ECM, expression, AU F1, landmarks,
# identity) on the first 100 faces-val images (--limit 100: CPU budget). Usage: eval_full.sh METHODS SCALES
set -euo pipefail
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/fsrbench run --methods "$1" \
  --datasets folder:/work/shared/data/faces-val --scales "$2" --limit 100 \
  --checkpoint-dir runs/evidence/ckpt --out runs/evidence/eval-full --device cpu --no-progress --no-leaderboard
