#!/usr/bin/env python
"""Regenerate leaderboards/*.md from the stored results in leaderboards/results/ (never edit boards by hand).

    python scripts/regenerate_leaderboards.py            # rewrite every board
    python scripts/regenerate_leaderboards.py --check    # exit 1 and show a diff if a board drifted
    python scripts/regenerate_leaderboards.py --store RUN_DIR NAME [--title T] [--reported-dataset CelebA]
                                                         # copy a run's small files into leaderboards/results/NAME
"""
from __future__ import annotations

import argparse
import sys

from fsrbench.report.boards import ROOT, regenerate, store_results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    p.add_argument("--store", nargs=2, metavar=("RUN_DIR", "NAME"))
    p.add_argument("--title", default=None)
    p.add_argument("--compare-reported", action="store_true")
    p.add_argument("--reported-dataset", default=None)
    a = p.parse_args()
    if a.store:
        d = store_results(a.store[0], a.store[1], title=a.title, compare_reported=a.compare_reported,
                          reported_dataset=a.reported_dataset)
        print(f"stored {d}")
    problems = regenerate(ROOT, check=a.check)
    for msg in problems:
        print(msg, file=sys.stderr)
    if not problems and not a.check:
        print(f"boards written under {ROOT}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
