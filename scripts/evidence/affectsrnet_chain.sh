#!/usr/bin/env bash
# AffectSRNet evidence chain (docs/evidence.md), one scale: stage 0 (RRDB backbone, L1 only: the offline
# stand-in for the paper's ESRGAN initialisation), then the full network and the `rrdb` ablation, both from
# the stage-0 weights with the full four-term loss. 1 thread, niced. Usage: affectsrnet_chain.sh SCALE
set -euo pipefail
cd "$(dirname "$0")/../.."
S=$1
mkdir -p runs/evidence/init runs/evidence/ckpt runs/evidence/logs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DATA=(--dataset folder:/work/shared/data/faces-train --val-dataset folder:/work/shared/data/faces-val)
timed() {  # timed NAME CMD...
  local name=$1; shift; local start rc=0; start=$(date +%s)
  nice -n 10 "$@" > "runs/evidence/logs/train-$name.log" 2>&1 || rc=$?
  echo "$name rc=$rc wall_s=$(( $(date +%s) - start ))" >> runs/evidence/logs/walltimes.txt
  return $rc
}
INIT=runs/evidence/init/affectsrnet-rrdb-x$S
timed "init-affectsrnet-rrdb-x$S" .venv/bin/fsrbench train affectsrnet-rrdb --scale "$S" "${DATA[@]}" \
  --preset cpu-evidence-init --device cpu --no-progress --out "$INIT"
for M in affectsrnet affectsrnet-rrdb; do
  timed "$M-x$S" .venv/bin/fsrbench train "$M" --scale "$S" "${DATA[@]}" --preset cpu-evidence \
    --set "esrgan_init=$INIT/best.safetensors" --device cpu --no-progress --out "runs/evidence/ckpt/$M-x$S"
done
