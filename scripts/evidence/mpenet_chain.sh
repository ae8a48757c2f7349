#!/usr/bin/env bash
# MPENet / MPEGAN evidence chain at one scale (docs/evidence.md), 1 thread each step (THREADS=N for more):
#   stage 0:  mpenet, reconstruction loss only (preset cpu-evidence-init[-x8]) -> runs/evidence/init/mpenet-xS
#   stage 0b (x8 only): mpenet from stage 0, the branches learn on detached SR (cpu-evidence-heads-x8)
#                                                                               -> runs/evidence/init/mpenet-heads-x8
#   stage 1:  mpenet, the paper's joint objective from stage 0 (x4) / 0b (x8) (cpu-evidence[-x8])
#                                                                               -> runs/evidence/ckpt/mpenet-xS
#   GAN:      mpegan from stage 1 (cpu-evidence[-x8])                           -> runs/evidence/ckpt/mpegan-xS
# Usage: [THREADS=N] mpenet_chain.sh SCALE [0|0b|1|gan|all]
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
START="runs/evidence/init/mpenet-x$S"
if [ "$S" = 8 ]; then
  if [ "$WHAT" = 0b ] || [ "$WHAT" = all ]; then
    train mpenet runs/evidence/init/mpenet-heads-x8 cpu-evidence-heads-x8 --set "init_from=$START/best.safetensors"
  fi
  START=runs/evidence/init/mpenet-heads-x8
fi
if [ "$WHAT" = 1 ] || [ "$WHAT" = all ]; then
  train mpenet "runs/evidence/ckpt/mpenet-x$S" "cpu-evidence$SUF" --set "init_from=$START/best.safetensors"
fi
if [ "$WHAT" = gan ] || [ "$WHAT" = all ]; then
  train mpegan "runs/evidence/ckpt/mpegan-x$S" "cpu-evidence$SUF" \
    --set "init_from=runs/evidence/ckpt/mpenet-x$S/best.safetensors"
fi
