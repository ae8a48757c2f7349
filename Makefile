# The README's two commands: `make demo` and `make test`. Both set up .venv first (scripts/setup.sh).
.PHONY: setup demo test test-fast bench leaderboards clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/fsrbench run --datasets demo --methods all,hr-oracle --out runs/demo
	@echo "leaderboard: runs/demo/leaderboard.md"

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

leaderboards: setup
	.venv/bin/python scripts/regenerate_leaderboards.py

bench: setup
	.venv/bin/python -m pytest -q benchmarks --benchmark-only

clean:
	rm -rf runs .pytest_cache
