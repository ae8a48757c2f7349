"""``fsrbench report RUN_DIR [--out FILE.html]``: one self-contained static HTML page for a results directory
(run card, leaderboard, reported vs reproduced, comparison grids, plots; see fsrbench/report/html.py)."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a results directory",
                       description="Static HTML page (inline CSS/JS, base64 images, sortable tables): run card, "
                                   "leaderboard, reported vs reproduced, comparison grids and plots.")
    p.add_argument("run_dir", help="results directory written by `fsrbench run`")
    p.add_argument("--out", "-o", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--title", default=None)
    p.add_argument("--no-grids", action="store_true", help="leave out the comparison grids (faster, smaller)")
    p.add_argument("--plots-format", choices=("png", "svg"), default="png")
    p.add_argument("--save-figures", default=None, metavar="DIR",
                   help="also write every grid (PNG) and plot (PNG/SVG) as a file into DIR")
    p.add_argument("--reported-dataset", default=None,
                   help="compare with this published dataset (e.g. CelebA) even if the run used other images")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fsrbench.report.html import write_report

    path = write_report(args.run_dir, args.out, title=args.title, grids=not args.no_grids,
                        plots_fmt=args.plots_format, save_dir=args.save_figures,
                        reported_dataset=args.reported_dataset, log=lambda m: print(m, file=sys.stderr))
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0
