#!/usr/bin/env bash
# Create .venv (if missing) and install fsrbench with its verified stack. Idempotent: a stamp file skips
# the pip calls when nothing changed. Works offline on the project machines (torch comes from local
# disk there) and online anywhere else. Override the interpreter with PYTHON=python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "fsrbench needs Python >= 3.10")'
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.fsrbench-setup
want=$(cat requirements/stack.txt requirements/carriers.txt pyproject.toml setup.py weights/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing the stack into .venv (first time: a few minutes)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements/stack.txt
# the carriers' own runtime dependencies are deliberately not installed: pip's resolver warns about them
.venv/bin/python -m pip install -q --no-deps -r requirements/carriers.txt 2>.venv/carriers.log \
  || { cat .venv/carriers.log; exit 1; }
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>.venv/editable.log \
  || { cat .venv/editable.log; exit 1; }
# the shipped reference weights: their own distribution (fsrbench-weights), found via its entry point
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e weights 2>.venv/weights.log \
  || { cat .venv/weights.log; exit 1; }
echo "$want" > "$stamp"
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
