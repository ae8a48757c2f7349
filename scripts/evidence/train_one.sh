#!/usr/bin/env bash
# Evidence-of-learning training (docs/evidence.md): one method at one scale with the `cpu-evidence` preset,
# 1 thread (THREADS=N for more), niced, on faces-train, validated once at the end on faces-val.
# Usage: [OUT=DIR] [THREADS=N] train_one.sh METHOD SCALE [PRESET [EXTRA fsrbench train ARGS...]]
#   (PRESET default: cpu-evidence; OUT default: runs/evidence/ckpt/METHOD-xSCALE)
set -euo pipefail
cd "$(dirname "$0")/../.."
M=$1; S=$2; P=${3:-cpu-evidence}; shift $(( $# < 3 ? $# : 3 ))
OUT=${OUT:-runs/evidence/ckpt/$M-x$S}; NAME=$(basename "$OUT")
[ "$(dirname "$OUT")" = runs/evidence/ckpt ] || NAME="$(basename "$(dirname "$OUT")")-$NAME"  # e.g. init-mpenet-x8
mkdir -p "$(dirname "$OUT")" runs/evidence/logs
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
start=$(date +%s); rc=0
nice -n 10 .venv/bin/fsrbench train "$M" --scale "$S" \
  --dataset folder:/work/shared/data/faces-train --val-dataset folder:/work/shared/data/faces-val \
  --preset "$P" "$@" --device cpu --no-progress --out "$OUT" \
  > "runs/evidence/logs/train-$NAME.log" 2>&1 || rc=$?

echo "$NAME ($P) rc=$rc wall_s=$(( $(date +%s) - start ))" >> runs/evidence/logs/walltimes.txt
exit $rc
