"""``fsrbench score --sr DIR --hr DIR --scale S``: every metric on SR images made elsewhere (see fsrbench/eval/score.py).

Examples::

    fsrbench score --sr results/mymethod_x8 --hr data/celeba_hr --scale 8 --name mymethod
    fsrbench score --sr out/dic --hr data/helen_hr --scale 8 --name dic --out runs/helen-mine   # same --out: one board
    fsrbench score --sr SR --hr HR --scale 4 --metrics psnr,ssim,lpips --protocol sparnet-v1

Pairs are matched by file name (SR ``a.png`` or ``a.jpg.png`` for HR ``a.jpg``); HR images must be 128×128.
The results directory is the one ``fsrbench run`` writes (per_image.csv, metrics.json, leaderboard.md); the
same command resumes, and a changed SR file recomputes the cell.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from fsrbench.protocols import DEFAULT_PROTOCOL


def add_parser(sub: Any) -> None:
    p = sub.add_parser("score", help="score a folder of SR images made elsewhere against their HR images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sr", required=True, metavar="DIR", help="folder of SR images (128x128)")
    p.add_argument("--hr", required=True, metavar="DIR", help="folder of the HR images (128x128), matched by file name")
    p.add_argument("--scale", type=int, required=True,
                   help="the SR factor the images were made at (the protocol crops S pixels per side for PSNR/SSIM)")
    p.add_argument("--name", default="sr", help="method name of these outputs on the board (default sr)")
    p.add_argument("--dataset", default=None, help="name of the HR set on the board (default: the HR folder's name)")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help=f"protocol id or YAML path (default {DEFAULT_PROTOCOL})")
    p.add_argument("--metrics", default=None, help="comma list of metrics (default: all registered that can run)")
    p.add_argument("--out", default=None, help="results directory (default runs/<dataset>_<protocol>)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16, as fsrbench run)")
    p.add_argument("--device", default="cpu", help="device of the metrics' models: cpu, cuda, cuda:N or auto")
    p.add_argument("--fer", default=None, help="FER model for ECM/expression metrics (see `fsrbench list fer`)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N HR images")
    p.add_argument("--seed", type=int, default=0, help="seed for bootstrap CIs (default 0)")
    p.add_argument("--cache-dir", default=None, help="analysis cache (default $FSRBENCH_CACHE or ~/.cache/fsrbench)")
    p.add_argument("--force", action="store_true", help="recompute a cell that is already done")
    p.add_argument("--strict", action="store_true", help="exit 1 if any image failed (e.g. an HR without SR image)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show progress bars (default: only when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-leaderboard", action="store_true",
                   help="do not print the leaderboard at the end (OUT/leaderboard.md is still written)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fsrbench import registry as reg
    from fsrbench.errors import RegistryError, unknown_name_message
    from fsrbench.protocols import get_protocol

    for flag, d in (("--sr", args.sr), ("--hr", args.hr)):
        if not Path(d).expanduser().is_dir():
            raise FileNotFoundError(f"{flag} {d} is not a directory; give the folder of {flag[2:].upper()} images")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    for name in metrics or []:
        if name not in reg.metrics:
            raise RegistryError(unknown_name_message("metrics", name, reg.metrics.names()))
    get_protocol(args.protocol).lr_size(args.scale)

    from fsrbench.commands.run import _stdout_to_stderr, board_writer
    from fsrbench.eval.score import ScoreSpec, score_run

    spec = ScoreSpec(sr=args.sr, hr=args.hr, scale=args.scale, protocol=args.protocol, name=args.name,
                     dataset=args.dataset, metrics=metrics, out=args.out or "", batch_size=args.batch_size,
                     device=args.device, force=args.force, strict=args.strict, limit=args.limit, seed=args.seed,
                     metric_options={"fer": args.fer} if args.fer else {}, cache_dir=args.cache_dir,
                     progress=sys.stderr.isatty() if args.progress is None else args.progress)
    board, write_board = board_writer()  # leaderboard.md under the results lock, as fsrbench run
    with _stdout_to_stderr():  # stdout holds the leaderboard only
        result = score_run(spec, on_results=write_board)
    if board and not args.no_leaderboard:
        print(board[0])
    print(f"results: {result.out} ({len(result.computed)} cells computed, {len(result.cached)} reused, "
          f"{len(result.failures)} image failures)", file=sys.stderr)
    if args.strict and result.exit_code_strict:
        for f in result.failures:
            print(f"failed: {f['image_id']}: {f['reason']}", file=sys.stderr)
        return 1
    return 0
