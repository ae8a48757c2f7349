#!/usr/bin/env bash
# Evidence evaluation with the full metric set (PSNR, SSIM, LPIPS, ECM, expression, AU F1, landmarks,
# identity) on faces-val. Usage: eval_full.sh METHODS SCALES [LIMIT [OUT]]
#   LIMIT: first N images (default 100: CPU budget; "all" = the 300), OUT: results dir (default runs/evidence/eval-full)
#   WEIGHTS=METHOD=PATH in the environment adds --weights (e.g. WEIGHTS=ufvnet=runs/evidence/ckpt/ufvnet-2/best.safetensors)
set -euo pipefail
cd "$(dirname "$0")/../.."
LIMIT=${3:-100}; OUT=${4:-runs/evidence/eval-full}
lim=(); [ "$LIMIT" = all ] || lim=(--limit "$LIMIT")
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/fsrbench run --methods "$1" \
  --datasets folder:/work/shared/data/faces-val --scales "$2" "${lim[@]}" \
  ${WEIGHTS:+--weights "$WEIGHTS"} --checkpoint-dir runs/evidence/ckpt --out "$OUT" --device cpu --no-progress \
  --no-leaderboard
