#!/usr/bin/env bash
# Evidence evaluation (docs/evidence.md): the benchmark's own `fsrbench run` on all 300 faces-val images,
# PSNR/SSIM/LPIPS, the evidence checkpoints found under runs/evidence/ckpt. Usage: eval.sh METHODS SCALES
# (re-running resumes: finished cells are reused).
set -euo pipefail
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/fsrbench run --methods "$1" \
  --datasets folder:/work/shared/data/faces-val --scales "$2" --metrics psnr,ssim,lpips \
  --checkpoint-dir runs/evidence/ckpt --out runs/evidence/eval --device cpu --no-progress
