#!/usr/bin/env bash
# Multi-resolution evidence (docs/evidence.md, docs/multires.md): every faces-val image at every LR size of MR8
# (8, 16, ..., 64), PSNR/SSIM (the UFVNet paper's metrics). Any-scale methods (bicubic, ufvnet) see each LR
# natively; fixed-scale methods are evaluated with their x4 and x8 models on the same inputs.
# Usage: eval_multires.sh METHODS [LIMIT [OUT]]   (LIMIT: first N base images, default 100; "all" = 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
LIMIT=${2:-100}; OUT=${3:-runs/evidence/eval-mr8}
lim=(); [ "$LIMIT" = all ] || lim=(--limit "$LIMIT")
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/fsrbench run --methods "$1" \
  --datasets folder:/work/shared/data/faces-val --multires MR8 --scales 4,8 --metrics psnr,ssim "${lim[@]}" \
  --weights ufvnet=runs/evidence/ckpt/ufvnet-2/best.safetensors \
  --checkpoint-dir runs/evidence/ckpt --out "$OUT" --device cpu --no-progress --no-leaderboard
