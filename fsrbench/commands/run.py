"""``fsrbench run``: evaluate methods on datasets at scales; resumable (see fsrbench/eval/runner.py)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Iterator

from fsrbench.protocols import DEFAULT_PROTOCOL

# built-in values of the options an experiment file (--config) may also set; the command line wins over the file.
# They are RunSpec's defaults (tests/eval/test_experiment.py checks it), written out here so that resolving them
# imports neither torch nor the runner (batch_timeout: fsrbench.eval.isolate.DEFAULT_BATCH_TIMEOUT).
DEFAULTS: dict[str, Any] = {"methods": ["all"], "datasets": ["demo"], "scales": [4, 8], "metrics": None,
                            "protocol": DEFAULT_PROTOCOL, "out": "", "batch_size": 16, "device": "cpu", "amp": "none",
                            "multires": None, "weights": {}, "checkpoint_dir": None, "plugins": [], "limit": None,
                            "seed": 0, "strict": False, "save_sr": True, "isolate": "auto", "batch_timeout": 600.0}


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
    p.add_argument("--config", default=None, metavar="FILE",
                   help="experiment file (YAML: datasets, methods, scales, protocol, metrics ...; docs/quickstart.md); "
                        "options given on the command line win over it")
    p.add_argument("--methods", default=None, help="comma list of method names, or 'all' (default; excludes hr-oracle)")
    p.add_argument("--datasets", default=None,
                   help="comma list of dataset specs NAME[:ROOT][@SPLIT]: demo (default), folder:/dir, celeba, "
                        "celeba:/data/CelebA@test, helen:/data/Helen@test-all, ffhq (docs/datasets.md)")
    p.add_argument("--scales", default=None, help="comma list of scale factors (default 4,8)")
    p.add_argument("--metrics", default=None, help="comma list of metrics (default: all registered that can run)")
    p.add_argument("--protocol", default=None,
                   help=f"protocol id or YAML path (default {DEFAULT_PROTOCOL}); see `fsrbench list protocols`")
    p.add_argument("--out", default=None, help="results directory (default runs/<datasets>_<protocol>)")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default 16)")
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--amp", default=None, choices=["none", "bf16", "fp16"],
                   help="autocast precision for SR inference (for GPUs; default none = float32). Part of every "
                        "cell key: AMP results never mix with float32 ones")
    p.add_argument("--multires", default=None, metavar="MR3|MR7|MR8",
                   help="multi-resolution evaluation (UFVNet protocol): every image at every LR size of the set "
                        "(MR8: 8,16,...,64). Any-scale methods get each LR natively; fixed-scale methods are "
                        "evaluated with their model for each of --scales on the same inputs (docs/multires.md)")
    p.add_argument("--isolate", default=None, choices=["auto", "process", "inline"],
                   help="where a method's code runs: process = a worker process per cell (sys.exit, os._exit, "
                        "crashes and hangs cost only its images), inline = this process; auto (default) = inline "
                        "for fsrbench's built-in methods, process for plugins")
    p.add_argument("--batch-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds one batch of a method may take before its images fail and the method is not "
                        "called again in that cell (default 600; 0 = no limit)")
    p.add_argument("--force", action="store_true", help="recompute finished cells")
    p.add_argument("--strict", action="store_true", default=None,
                   help="exit 1 if any image failed or any method was skipped")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH",
                   help="weights file for a method; a file that cannot be loaded is an error (exit 2)")
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
    p.add_argument("--data-root", default=None,
                   help="folder of the datasets that name no root: DIR/<name> when it exists (any letter case, e.g. "
                        "/data/CelebA for celeba), else DIR itself")
    p.add_argument("--split", default=None,
                   help="split of the datasets whose spec names none (default: each dataset's test split)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N images of each dataset (a smoke test: the boards mark such cells)")
    p.add_argument("--seed", type=int, default=None, help="seed for bootstrap CIs (default 0)")
    p.add_argument("--no-save-sr", action="store_true", help="do not keep SR PNGs (they allow resuming without re-inference)")
    p.add_argument("--cache-dir", default=None, help="analysis cache (default $FSRBENCH_CACHE or ~/.cache/fsrbench)")
    p.add_argument("--workers", type=int, default=1,
                   help="score with N processes (torchrun, gloo); same results as one process")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show progress bars (default: only when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-leaderboard", action="store_true",
                   help="do not print the leaderboard at the end (OUT/leaderboard.md is still written)")
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


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """RunSpec fields from the built-in defaults < the experiment file (--config) < the command line."""
    settings: dict[str, Any] = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                                for k, v in DEFAULTS.items()}
    settings["metric_options"] = {}
    settings["dataset_options"] = {}
    if args.config:
        from fsrbench.eval.experiment import load_experiment

        settings.update(load_experiment(args.config))
    cli: dict[str, Any] = {}
    if args.methods is not None:
        cli["methods"] = _csv(args.methods)
    if args.datasets is not None:
        cli["datasets"] = _csv(args.datasets)
    if args.scales is not None:
        cli["scales"] = _ints(args.scales, "--scales")
    if args.metrics is not None:
        cli["metrics"] = _csv(args.metrics)
    for key in ("protocol", "out", "batch_size", "device", "amp", "multires", "checkpoint_dir", "limit", "seed",
                "isolate", "batch_timeout"):
        if getattr(args, key) is not None:
            cli[key] = getattr(args, key)
    if args.strict:
        cli["strict"] = True
    if args.no_save_sr:
        cli["save_sr"] = False
    settings.update(cli)
    if args.weights:
        settings["weights"] = {**settings["weights"], **_kv(args.weights, "--weights")}
    if args.plugin:
        settings["plugins"] = list(settings["plugins"]) + list(args.plugin)
    # command line only: an experiment file never lets a plugin replace a registered name (docs/plugins.md)
    settings["plugin_override"] = bool(args.plugin_override)
    metric_options = dict(settings.pop("metric_options"))
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
    dataset_options = dict(settings.pop("dataset_options"))
    if args.data_root:
        dataset_options["data_root"] = args.data_root
    if args.split:
        dataset_options["split"] = args.split
    settings["metric_options"] = metric_options
    settings["dataset_options"] = dataset_options
    return settings


def precheck(settings: dict[str, Any]) -> None:
    """Unknown names (methods, datasets, metrics, protocol), bad scales and a --data-root shared by several
    datasets fail here, from the entry-point names alone, before torch and the face models are imported."""
    from pathlib import Path

    from fsrbench import registry as reg
    from fsrbench.data.config import child_folder
    from fsrbench.data.spec import parse_spec
    from fsrbench.errors import RegistryError, unknown_name_message
    from fsrbench.protocols import get_protocol

    plugins = bool(settings.get("plugins"))  # a plugin may register any name: its file is imported later
    if not plugins:
        for name in settings["methods"]:
            if name != "all" and name not in reg.methods:
                raise RegistryError(unknown_name_message("methods", name, reg.methods.names()))
        for name in settings["metrics"] or []:
            if name not in reg.metrics:
                raise RegistryError(unknown_name_message("metrics", name, reg.metrics.names()))
    specs = [parse_spec(d) for d in settings["datasets"]]
    if not plugins:
        for ds in specs:
            if ds.name not in reg.datasets:
                raise RegistryError(unknown_name_message("datasets", ds.name, reg.datasets.names()))
    protocol = get_protocol(settings["protocol"])
    for s in settings["scales"]:
        protocol.lr_size(s)
    root = settings["dataset_options"].get("data_root")
    if root and Path(root).expanduser().is_dir():
        from fsrbench.data.opener import dataset_class, is_reader

        shared = [ds.name for ds in specs if not ds.arg and is_reader(dataset_class(ds.name))]
        if len(set(shared)) > 1:
            missing = [n for n in dict.fromkeys(shared) if child_folder(Path(root).expanduser(), n) is None]
            if missing:
                raise ValueError(
                    f"--data-root {root} would serve {len(set(shared))} datasets ({', '.join(dict.fromkeys(shared))}) "
                    f"but holds no folder {', '.join(f'{n}/' for n in missing)} (any letter case); give each "
                    f"dataset its own root (--datasets " + ",".join(f"{n}:/path/to/{n}" for n in dict.fromkeys(shared))
                    + ") or make --data-root the folder that holds them")


def board_writer() -> tuple[list[str], Any]:
    """``(board, write_board)``: the runner's ``on_results`` hook that renders ``leaderboard.md`` and writes it
    atomically while the results directory's lock is still held (also with --no-leaderboard, which only stops
    the printing); ``board`` then holds the text to print.  Used by ``fsrbench run`` and ``fsrbench score``."""
    from fsrbench.report.leaderboard import leaderboard
    from fsrbench.results import atomic_write_text

    board: list[str] = []

    def write_board(res: Any) -> None:
        board.append(leaderboard(res.out))
        atomic_write_text(res.out / "leaderboard.md", board[0])

    return board, write_board


def main(args: argparse.Namespace) -> int:
    if args.workers > 1 and "RANK" not in os.environ:
        return _relaunch_with_torchrun(args.workers)
    settings = resolve_settings(args)
    precheck(settings)

    from fsrbench.eval.runner import RunSpec, run

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    spec = RunSpec(force=args.force, cache_dir=args.cache_dir, progress=progress, **settings)
    board, write_board = board_writer()

    with _stdout_to_stderr():  # what plugins print never lands in the leaderboard printed on stdout
        result = run(spec, on_results=write_board)
    if os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 prints and writes everything
    if board and not args.no_leaderboard:
        print(board[0])
    print(f"results: {result.out} ({len(result.computed)} cells computed, {len(result.cached)} reused, "
          f"{len(result.skipped)} skipped, {len(result.failures)} image failures)", file=sys.stderr)
    if spec.strict and result.exit_code_strict:
        for s in result.skipped:
            print(f"skipped: {s['method']} x{s['scale']} on {s['dataset']}: {s['reason']}", file=sys.stderr)
        for f in result.failures:
            print(f"failed: {f['method']} x{f['scale']} on {f['dataset']} / {f['image_id']}: {f['reason']}",
                  file=sys.stderr)
        return 1
    return 0
