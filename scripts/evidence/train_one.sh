#!/usr/bin/env bash
# Evidence-of-learning training (docs/evidence.md): one method at one scale with the `cpu-evidence` preset,
# 1 thread, niced, on faces-train, validated once at the end on faces-val.
# Usage: train_one.sh METHOD SCALE [PRESET [EXTRA fsrbench train ARGS...]]   (PRESET default: cpu-evidence)
set -euo pipefail
cd "$(dirname "$0")/../.."
M=$1; S=$2; P=${3:-cpu-evidence}; shift $(( $# < 3 ? $# : 3 ))
mkdir -p runs/evidence/ckpt runs/evidence/logs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s); rc=0
nice -n 10 .venv/bin/fsrbench train "$M" --scale "$S" \
  --dataset folder:/work/shared/data/faces-train --val-dataset folder:/work/shared/data/faces-val \
  --preset "$P" "$@" --device cpu --no-progress --out "runs/evidence/ckpt/$M-x$S" \
  > "runs/evidence/logs/train-$M-x$S.log" 2>&1 || rc=$?

echo "$M x$S rc=$rc wall_s=$(( $(date +%s) - start ))" >> runs/evidence/logs/walltimes.txt
