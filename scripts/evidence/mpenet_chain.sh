#!/usr/bin/env bash
# MPENet / MPEGAN evidence chain at one scale (docs/evidence.md), 1 thread each step:
#   stage 0: mpenet, reconstruction loss only (preset cpu-evidence-init[-x8]) -> runs/evidence/init/mpenet-xS
#   stage 1: mpenet, the paper's joint objective from stage 0 (cpu-evidence[-x8])  -> runs/evidence/ckpt/mpenet-xS
#   GAN:     mpegan from stage 1 (cpu-evidence[-x8])                               -> runs/evidence/ckpt/mpegan-xS
# Usage: mpenet_chain.sh SCALE [0|1|gan|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
S=$1; WHAT=${2:-all}; SUF=""; [ "$S" = 8 ] && SUF="-x8"
train() {  # METHOD OUT PRESET [ARGS]: one train_one.sh run into OUT
  local m=$1 out=$2 preset=$3; shift 3
  OUT=$out scripts/evidence/train_one.sh "$m" "$S" "$preset" "$@"
}
if [ "$WHAT" = 0 ] || [ "$WHAT" = all ]; then
  train mpenet "runs/evidence/init/mpenet-x$S" "cpu-evidence-init$SUF"
fi
if [ "$WHAT" = 1 ] || [ "$WHAT" = all ]; then
  train mpenet "runs/evidence/ckpt/mpenet-x$S" "cpu-evidence$SUF" \
    --set "init_from=runs/evidence/init/mpenet-x$S/best.safetensors"
fi
if [ "$WHAT" = gan ] || [ "$WHAT" = all ]; then
  train mpegan "runs/evidence/ckpt/mpegan-x$S" "cpu-evidence$SUF" \
    --set "init_from=runs/evidence/ckpt/mpenet-x$S/best.safetensors"
fi
