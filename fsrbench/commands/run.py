"""``fsrbench run``: evaluate methods on datasets at scales; resumable (see fsrbench/eval/runner.py)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Iterator

from fsrbench.protocols import DEFAULT_PROTOCOL


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _ints(s: str, option: str) -> list[int]:
    try:
        return [int(x) for x in _csv(s)]
    except ValueError:
        raise ValueError(f"{option} expects whole numbers separated by commas (e.g. 4,8); got {s!r}") from None


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"{what} expects NAME=VALUE, got {it!r}")
        k, _, v = it.partition("=")
        out[k.strip()] = v.strip()
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="evaluate methods x datasets x scales (default: every runnable method on the demo set)",
                       description="Evaluate SR methods. Re-running the same command resumes: finished "
                                   "(method, dataset, scale) cells are not recomputed unless --force.")
    p.add_argument("--methods", default="all", help="comma list of method names, or 'all' (default; excludes hr-oracle)")
    p.add_argument("--datasets", default="demo", help="comma list: demo, folder:/dir, celeba, helen, ffhq (default demo)")
    p.add_argument("--scales", default="4,8", help="comma list of scale factors (default 4,8)")
    p.add_argument("--metrics", default=None, help="comma list of metrics (default: all registered that can run)")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help=f"protocol id or YAML path (default {DEFAULT_PROTOCOL}); see `fsrbench list protocols`")
    p.add_argument("--out", default=None, help="results directory (default runs/<datasets>_<protocol>)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"],
                   help="autocast precision for SR inference (for GPUs; default none = float32). Part of every "
                        "cell key: AMP results never mix with float32 ones")
    p.add_argument("--multires", default=None, metavar="MR3|MR7|MR8",
                   help="multi-resolution evaluation (UFVNet protocol): every image at every LR size of the set "
                        "(MR8: 8,16,...,64). Any-scale methods get each LR natively; fixed-scale methods are "
                        "evaluated with their model for each of --scales on the same inputs (docs/multires.md)")
    p.add_argument("--isolate", default="auto", choices=["auto", "process", "inline"],
                   help="where a method's code runs: process = a worker process per cell (sys.exit, os._exit, "
                        "crashes and hangs cost only its images), inline = this process; auto (default) = inline "
                        "for fsrbench's built-in methods, process for plugins")
    p.add_argument("--batch-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds one batch of a method may take before its images fail and the method is not "
                        "called again in that cell (default 600; 0 = no limit)")
    p.add_argument("--force", action="store_true", help="recompute finished cells")
    p.add_argument("--strict", action="store_true", help="exit 1 if any image failed or any method was skipped")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH", help="weights file for a method")
    p.add_argument("--checkpoint-dir", default=None, help="where trained checkpoints are looked up (default ./checkpoints)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py:Name|module:Name",
                   help="load a one-off plugin: a method, metric or dataset class (repeatable)")
    p.add_argument("--plugin-override", action="store_true",
                   help="let a --plugin replace a registered method/metric/dataset of the same name (refused "
                        "otherwise; its cells are kept apart from the built-in's either way)")
    p.add_argument("--fer", default=None, help="FER model for ECM/expression metrics (see `fsrbench list fer`)")
    p.add_argument("--fer-box", default=None, metavar="hog|haar|mediapipe|whole",
                   help="face box the FER sees, found on the HR image and reused for SR (default hog; "
                        "whole = the whole crop, the FER input before issue 22)")
    p.add_argument("--fer-fallback", default=None, metavar="whole|skip",
                   help="no HR face box: score the whole image (default, counted on the board) or skip it")
    p.add_argument("--fer-flip", action="store_true", help="average FER probabilities with the mirrored image's")
    p.add_argument("--identity", default=None,
                   help="identity model of the identity metric (default dlib-torch: dlib's descriptor with the network "
                        "in PyTorch, batched; dlib: dlib itself; see `fsrbench list identity`)")
    p.add_argument("--data-root", default=None, help="root directory of the real datasets")
    p.add_argument("--split", default=None, help="dataset split (default: the protocol's test split)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each dataset")
    p.add_argument("--seed", type=int, default=0, help="seed for bootstrap CIs (default 0)")
    p.add_argument("--no-save-sr", action="store_true", help="do not keep SR PNGs (they allow resuming without re-inference)")
    p.add_argument("--cache-dir", default=None, help="analysis cache (default $FSRBENCH_CACHE or ~/.cache/fsrbench)")
    p.add_argument("--workers", type=int, default=1,
                   help="score with N processes (torchrun, gloo); same results as one process")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard at the end")
    p.set_defaults(func=main)


def _relaunch_with_torchrun(workers: int) -> int:
    """``--workers N``: run this same command under torchrun with N ranks (sharded evaluation)."""
    import subprocess

    argv = sys.argv[1:]
    cleaned, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        cleaned.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}",
           "-m", "fsrbench", *cleaned]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.call(cmd, env=env)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """During the run, Python's ``sys.stdout`` and the process's file descriptor 1 both write to stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def main(args: argparse.Namespace) -> int:
    from fsrbench.eval.runner import RunSpec, run
    from fsrbench.report.leaderboard import leaderboard
    from fsrbench.results import atomic_write_text

    if args.workers > 1 and "RANK" not in os.environ:
        return _relaunch_with_torchrun(args.workers)

    metric_options: dict[str, Any] = {}
    if args.fer:
        metric_options["fer"] = args.fer
    for key in ("fer_box", "fer_fallback"):
        if getattr(args, key):
            metric_options[key] = getattr(args, key)
    if args.fer_flip:
        metric_options["fer_flip"] = True
    if any(k.startswith("fer_") for k in metric_options):
        from fsrbench.analysis.fer_input import FERInput

        try:
            FERInput.from_options(metric_options)
        except ValueError as exc:
            raise ValueError(f"fsrbench run: {exc} (--fer-box / --fer-fallback)") from exc
    if args.identity:
        metric_options["identity"] = args.identity
    dataset_options: dict[str, Any] = {}
    if args.data_root:
        dataset_options["data_root"] = args.data_root
    if args.split:
        dataset_options["split"] = args.split
    spec = RunSpec(
        methods=_csv(args.methods), datasets=_csv(args.datasets), scales=_ints(args.scales, "--scales"),
        metrics=_csv(args.metrics) if args.metrics else None, protocol=args.protocol, out=args.out or "",
        batch_size=args.batch_size, device=args.device, force=args.force, strict=args.strict,
        weights=_kv(args.weights, "--weights"), checkpoint_dir=args.checkpoint_dir, plugins=args.plugin,
        plugin_override=args.plugin_override,
        save_sr=not args.no_save_sr, limit=args.limit, seed=args.seed, metric_options=metric_options,
        dataset_options=dataset_options, cache_dir=args.cache_dir, progress=not args.no_progress,
        amp=args.amp, multires=args.multires, isolate=args.isolate,
        **({} if args.batch_timeout is None else {"batch_timeout": args.batch_timeout}))
    board: list[str] = []

    def write_board(res: Any) -> None:  # under the results directory's lock, atomically
        if not args.no_leaderboard:
            board.append(leaderboard(res.out))
            atomic_write_text(res.out / "leaderboard.md", board[0])

    with _stdout_to_stderr():  # what plugins print never lands in the leaderboard printed on stdout
        result = run(spec, on_results=write_board)
    if os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 prints and writes everything
    if board:
        print(board[0])
    print(f"results: {result.out} ({len(result.computed)} cells computed, {len(result.cached)} reused, "
          f"{len(result.skipped)} skipped, {len(result.failures)} image failures)", file=sys.stderr)
    if args.strict and result.exit_code_strict:
        for s in result.skipped:
            print(f"skipped: {s['method']} x{s['scale']} on {s['dataset']}: {s['reason']}", file=sys.stderr)
        for f in result.failures:
            print(f"failed: {f['method']} x{f['scale']} on {f['dataset']} / {f['image_id']}: {f['reason']}",
                  file=sys.stderr)
        return 1
    return 0
