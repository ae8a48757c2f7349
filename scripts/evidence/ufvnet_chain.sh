#!/usr/bin/env bash
# UFVNet evidence of learning (docs/evidence.md): stage 1a (anchors) and 1b (regressor) side by side, one thread
# each, then stage 2 from both on two threads; faces-train -> faces-val. Usage: ufvnet_chain.sh [1|2|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs/evidence/ckpt runs/evidence/logs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
train() {  # train.sh STAGE_PRESET OUT [extra args]
  local preset=$1 out=$2; shift 2
  local start; start=$(date +%s); local rc=0
  nice -n 10 .venv/bin/fsrbench train ufvnet --scale 8 \
    --dataset folder:/work/shared/data/faces-train --val-dataset folder:/work/shared/data/faces-val \
    --preset "$preset" "$@" --device cpu --no-progress --out "runs/evidence/ckpt/$out" \
    > "runs/evidence/logs/train-$out.log" 2>&1 || rc=$?
  echo "ufvnet $preset rc=$rc wall_s=$(( $(date +%s) - start ))" >> runs/evidence/logs/walltimes.txt
  return $rc
}
what=${1:-all}
if [ "$what" = 1 ] || [ "$what" = all ]; then
  train cpu-evidence-1a ufvnet-1a & train cpu-evidence-1b ufvnet-1b & wait
fi
if [ "$what" = 2 ] || [ "$what" = all ]; then
  OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 train cpu-evidence-2 ufvnet-2 \
    --set 'init_from=[runs/evidence/ckpt/ufvnet-1a/best.safetensors,runs/evidence/ckpt/ufvnet-1b/step_00000300.safetensors]'
fi
