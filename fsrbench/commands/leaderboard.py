"""``fsrbench leaderboard RUN_DIR``: leaderboard tables (markdown, CSV or LaTeX) from a results directory.

``--profile`` first measures parameters, GMACs, latency and peak memory of the run's methods and stores
them in RUN_DIR/profile.json (see fsrbench/report/profile.py); ``--compare-reported`` appends the papers'
published numbers beside the reproduced ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("leaderboard", help="render the leaderboard of a results directory (md, csv or latex)",
                       description="One table per dataset x scale: every summary with 95% CI, best in bold, "
                                   "significance vs the best, mean rank, cost, N and failures.")
    p.add_argument("run_dir", help="results directory written by `fsrbench run`")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.add_argument("--title", default=None)
    p.add_argument("--format", dest="fmt", choices=("md", "csv", "latex"), default="md")
    p.add_argument("--compare-reported", action="store_true",
                   help="append the papers' published numbers (leaderboards/reported) beside the reproduced ones")
    p.add_argument("--reported-dataset", default=None,
                   help="compare every board with this published dataset (e.g. CelebA) even if the run used other images")
    p.add_argument("--no-significance", action="store_true", help="skip the paired tests (faster)")
    p.add_argument("--ecm-reference", default=None, metavar="METHOD",
                   help="rank ECM by the paired difference against this method (default: bicubic if on the "
                        "board, else the best ECM)")
    p.add_argument("--profile", action="store_true",
                   help="measure params/GMACs/latency/peak memory of the run's methods into RUN_DIR/profile.json first")
    p.add_argument("--device", default="cpu", help="device for --profile (cpu, cuda, auto)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per method for --profile (default 10)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fsrbench.report.leaderboard import leaderboard

    if args.profile:
        from fsrbench.report.profile import profile_run

        path = profile_run(args.run_dir, device=args.device, repeats=args.repeats,
                           log=lambda m: print(m, file=sys.stderr))
        print(f"profile: {path}", file=sys.stderr)
    text = leaderboard(args.run_dir, title=args.title, fmt=args.fmt, compare_reported=args.compare_reported,
                       reported_dataset=args.reported_dataset, significance_tests=not args.no_significance,
                       ecm_reference=getattr(args, "ecm_reference", None))
    if args.output:
        from fsrbench.results import atomic_write_text

        atomic_write_text(Path(args.output), text)
    else:
        print(text, end="")
    return 0
