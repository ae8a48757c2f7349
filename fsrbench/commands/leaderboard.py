"""``fsrbench leaderboard RUN_DIR``: markdown tables from a results directory."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("leaderboard", help="render the leaderboard of a results directory as markdown")
    p.add_argument("run_dir", help="results directory written by `fsrbench run`")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.add_argument("--title", default=None)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fsrbench.leaderboard import leaderboard

    md = leaderboard(args.run_dir, title=args.title)
    if args.output:
        Path(args.output).write_text(md)
    else:
        print(md, end="")
    return 0
