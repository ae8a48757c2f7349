#!/usr/bin/env bash
# The training engine's GPU check (docs/training.md, "GPU check"): every trainable method for a few steps in
# bf16 and fp16 autocast, in 2-process DDP when two GPUs exist, every checkpoint evaluated; prints a table
# (steps/s, peak memory, finite losses, DDP equality). Within 10 minutes on one GPU.
#   scripts/gpu_check.sh              # on a GPU machine
#   scripts/gpu_check.sh --dry-run    # CPU: the same code paths at tiny sizes (CI runs this)
# Options: --methods a,b  --steps N  --data DIR  --images N  --out DIR (default runs/gpu_check)  --budget-s S
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
