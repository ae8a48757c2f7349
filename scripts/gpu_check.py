"""The GPU check of the training engine (``scripts/gpu_check.sh``): every trainable method for a few steps in bf16
and fp16 autocast, in 2-process DDP when two GPUs exist, each checkpoint evaluated; one table.

GPU mode (default; needs CUDA): the paper-size networks (preset ``default``) for ``--steps`` steps each, bf16
and fp16 (GradScaler) autocast, steps/s and peak memory per run; DDP with 2 processes (NCCL) when two GPUs
are visible, its weights compared with one process for SRCNN and SPARNet-Light (BatchNorm).

``--dry-run`` (CPU, what CI runs): the same code paths at the ``tiny`` presets for 2 steps: bf16 autocast with
the fp16 range guard on the first step (real fp16 kernels are 70-180x slower than float32 on a CPU without
AVX512-FP16, see docs/training.md), 2-process DDP with gloo for every method in one torchrun launch, the
DDP-vs-1-process weight comparison, and the evaluation of every checkpoint with ``fsrbench run``.

Results: a markdown table on stdout and in OUT/gpu_check.md, the rows as JSON in OUT/gpu_check.json; exit
status 0 when every row is ok, 1 otherwise, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: deterministic methods whose 2-process weights are compared with one process's: max |dw| allowed (CPU, GPU).
#: SPARNet-Light's BatchNorm layers at the hourglass bottoms see 1x1 maps (4 values per channel in a batch of 4),
#: which amplifies float32 rounding (measured 4e-4 after 2 steps, vs 6e-3 without sync_batchnorm); the
#: global-batch statistics themselves are exact (tests/train/test_train_ddp.py, float64). GPU kernels are not
#: bit-deterministic.
EQUALITY = {"srcnn": (1e-5, 1e-3), "sparnet-light": (2e-3, 5e-3)}


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny presets, 2 steps (CI)")
    ap.add_argument("--methods", default="", help="comma-separated method names (default: every trainable method)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: 10 on GPU, 2 in --dry-run)")
    ap.add_argument("--scale", type=int, default=8)
    ap.add_argument("--data", default=None, help="folder of 128x128 faces (default: ../shared/data/faces-val when it "
                                                 "exists, else synthetic images)")
    ap.add_argument("--images", type=int, default=None, help="images used (default 64 on GPU, 8 in --dry-run)")
    ap.add_argument("--out", default="runs/gpu_check", help="output directory (default runs/gpu_check)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting new runs after this many seconds")
    ap.add_argument("--no-ddp", action="store_true", help="skip the 2-process runs")
    ap.add_argument("--_ddp", default=None, help=argparse.SUPPRESS)  # internal: the torchrun worker
    return ap.parse_args(argv)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def _data(args: argparse.Namespace, out: Path) -> Path:
    n = args.images or (8 if args.dry_run else 64)
    src = Path(args.data) if args.data else REPO.parent / "shared" / "data" / "faces-val"
    d = out / "data"
    if d.is_dir() and len(list(d.iterdir())) == n:
        return d
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n] if src.is_dir() else []
    if args.data and len(files) < n:
        raise SystemExit(f"gpu_check: --data {src}: needs at least {n} images (found {len(files)}); lower --images")
    if files:
        for f in files:
            (d / f.name).symlink_to(f.resolve())
        return d
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    for i in range(n):  # smooth synthetic images (no faces: face-model priors come out "not found")
        a = rng.random((3, 3))
        img = np.stack([a[c, 0] * xx + a[c, 1] * yy + a[c, 2] * np.sin(6.28 * (xx + yy) * (i + 1) / n)
                        for c in range(3)], -1)
        img = (255 * (img - img.min()) / (np.ptp(img) + 1e-6)).astype(np.uint8)
        Image.fromarray(img).save(d / f"synthetic_{i:03d}.png")
    return d


def _methods(arg: str) -> list[str]:
    from fsrbench.registry import methods

    names = [n for n in methods.names() if getattr(methods.get(n), "trainable", False)]
    if arg:
        want = [x.strip() for x in arg.split(",") if x.strip()]
        unknown = sorted(set(want) - set(names))
        if unknown:
            raise SystemExit(f"gpu_check: --methods: not trainable methods: {unknown} (have {names})")
        return want
    return sorted(names)


def _sets(args: argparse.Namespace, steps: int, amp: str, n_images: int) -> list[str]:
    sets = [f"steps={steps}", "epochs=null", f"amp={amp}", "val_every=0", "ckpt_every=0", "keep_last=1",
            "log_every=1", "tensorboard=false", "val_holdout=2", "val_images=2"]
    if not args.dry_run:
        sets += ["num_workers=4", "memory_format=channels_last", "cudnn_benchmark=true"]
        if n_images < 34:
            sets.append("batch_size=2")
    return sets


# ------------------------------------------------------------------------------------------------
# one run in this process
# ------------------------------------------------------------------------------------------------
def _one(name: str, mode: str, args: argparse.Namespace, data: Path, out: Path, steps: int,
         extra: list[str] | None = None) -> dict[str, Any]:
    import torch

    from fsrbench.registry import instantiate, methods
    from fsrbench.recipes import resolve_config
    from fsrbench.train.logs import read_csv
    from fsrbench.train.loop import train

    row: dict[str, Any] = {"method": name, "mode": mode, "ok": False}
    run = out / "runs" / f"{name}-{mode}"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    method = instantiate(methods.get(name))
    amp = {"fp32": "none", "fp16-range": "bf16"}.get(mode, mode)  # fp16-range: bf16 + the fp16 range guard
    device = "cpu" if args.dry_run else "cuda"
    guard_note = None
    if mode == "fp16-range":  # the first step's forward under the fp16 range guard (CPU stand-in for fp16)
        from fsrbench.train.fp16_guard import Fp16RangeGuard

        inner = method.training_loss
        state = {"first": True}

        def guarded(model: Any, batch: Any, config: Any) -> Any:
            if not state["first"]:
                return inner(model, batch, config)
            state["first"] = False
            with Fp16RangeGuard() as g:
                res = inner(model, batch, config)
            state["overflows"] = g.overflows
            return res

        method.training_loss = guarded  # type: ignore[method-assign]
    t0 = time.perf_counter()
    try:
        preset = "tiny" if args.dry_run else "default"
        sets = _sets(args, steps, amp, len(list(data.iterdir()))) + list(extra or [])
        cfg = resolve_config(method, preset, None, sets)
        if cfg.get("require_init") and not cfg.get("init_from"):  # e.g. MPEGAN: no trained MPENet here
            cfg = resolve_config(method, preset, None, sets + ["require_init=false"])
            row["note"] = "from scratch (require_init=false)"
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        res = train(method, args.scale, f"folder:{data}", config=cfg, device=device, out=run, progress=False)
        rows = read_csv(run / "train_log.csv")
        losses = [float(r["loss"]) for r in rows]
        row["losses_finite"] = all(math.isfinite(x) for x in losses)
        if mode == "fp16":
            row["skipped_steps"] = sum(1 for a, b in zip(rows, rows[1:]) if float(b["amp_scale"]) < float(a["amp_scale"]))
        rates = [float(r["img_per_s"]) / int(cfg["batch_size"]) for r in rows[1:]] or [float(rows[-1]["img_per_s"]) / int(cfg["batch_size"])]
        row["steps_per_s"] = round(sum(rates) / len(rates), 3)
        if device == "cuda":
            row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if mode == "fp16-range":
            row["fp16_overflows"] = [f"{op} {v:.3g}" for op, v in state.get("overflows", [])][:3]
            guard_note = not row["fp16_overflows"]
        row["card"] = str(res.last_card)
        row["ok"] = bool(row["losses_finite"]) and guard_note is not False
    except Exception as exc:  # noqa: BLE001 - a failing method is a row of the table
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    del method
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def _evaluate(row: dict[str, Any], args: argparse.Namespace, data: Path, out: Path) -> None:
    """``fsrbench run`` on the checkpoint of a run: PSNR on 2 images."""
    if not row.get("card"):
        return
    import pandas as pd

    from fsrbench.cli import main

    res = out / "eval" / f"{row['method']}-{row['mode']}"
    argv = ["run", "--methods", row["method"], "--datasets", f"folder:{data}", "--scales", str(args.scale),
            "--metrics", "psnr", "--weights", f"{row['method']}={row['card']}", "--out", str(res), "--limit", "2",
            "--no-progress", "--no-leaderboard"]
    if args.dry_run:
        argv += ["--device", "cpu"]
    try:
        rc = main(argv)
        table = pd.read_csv(res / "per_image.csv")
        vals = table[table["method"] == row["method"]]["psnr"].dropna()
        row["eval_psnr"] = round(float(vals.mean()), 2) if rc == 0 and len(vals) else None
    except Exception as exc:  # noqa: BLE001
        row["eval_psnr"] = None
        row["eval_error"] = f"{type(exc).__name__}: {exc}"[:200]
    if row.get("eval_psnr") is None:
        row["ok"] = False


# ------------------------------------------------------------------------------------------------
# DDP: every method in one torchrun launch
# ------------------------------------------------------------------------------------------------
def _ddp_worker(spec: str) -> int:
    """Runs under torchrun: the jobs of ``spec`` in one process group; writes per-job results (rank 0)."""
    import torch.distributed as dist

    from fsrbench.registry import instantiate, methods
    from fsrbench.recipes import resolve_config
    from fsrbench.train.loop import train

    jobs = json.loads(Path(spec).read_text())
    cuda = jobs["device"] == "cuda"
    if cuda:
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    results = {}
    for job in jobs["runs"]:
        t0 = time.perf_counter()
        try:
            method = instantiate(methods.get(job["method"]))
            cfg = resolve_config(method, jobs["preset"], None, job["sets"])
            train(method, jobs["scale"], jobs["dataset"], config=cfg, device=jobs["device"], out=job["out"],
                  progress=False)
            results[job["method"]] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - recorded; the other ranks fail the same way or time out
            results[job["method"]] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        results[job["method"]]["seconds"] = round(time.perf_counter() - t0, 1)
        if dist.get_rank() == 0:
            Path(jobs["results"]).write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()
    return 0


def _weights(card: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    from fsrbench.train import checkpoints as ck

    return load_file(str(ck.weights_path(ck.read_card(card))))


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def _ddp(names: list[str], args: argparse.Namespace, data: Path, out: Path, steps: int,
         single: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    d = out / "ddp"
    d.mkdir(parents=True, exist_ok=True)
    n_img = len(list(data.iterdir()))
    sets = _sets(args, steps, "none", n_img) + _ddp_extra(args)
    jobs = {"device": "cpu" if args.dry_run else "cuda", "preset": "tiny" if args.dry_run else "default",
            "scale": args.scale, "dataset": f"folder:{data}", "results": str(d / "results.json"),
            "runs": [{"method": n, "out": str(d / n), "sets": sets} for n in names]}
    spec = d / "jobs.json"
    spec.write_text(json.dumps(jobs, indent=1))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if args.dry_run:
        env["OMP_NUM_THREADS"] = "1"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(Path(__file__).resolve()), "--_ddp", str(spec)], env=env, cwd=REPO,
                       capture_output=True, text=True)
    (d / "torchrun.log").write_text(r.stdout + r.stderr)
    results = json.loads((d / "results.json").read_text()) if (d / "results.json").is_file() else {}
    rows = []
    for n in names:
        res = results.get(n, {"ok": False, "error": f"torchrun rc {r.returncode} (see {d / 'torchrun.log'})"})
        row = {"method": n, "mode": "ddp2-fp32", "ok": bool(res.get("ok")), "seconds": res.get("seconds")}
        if res.get("error"):
            row["error"] = res["error"]
        cards = sorted((d / n).glob("step_*.card.json"))
        if row["ok"] and cards:
            row["card"] = str(cards[-1])
            if n in single and single[n].get("card"):
                row["ddp_max_abs_diff"] = _max_diff(_weights(Path(row["card"])), _weights(Path(single[n]["card"])))
                tol = EQUALITY[n][0 if args.dry_run else 1]
                row["ok"] = row["ddp_max_abs_diff"] < tol
        rows.append(row)
    rows[-1]["ddp_wall_s"] = round(time.perf_counter() - t0, 1)
    return rows


# ------------------------------------------------------------------------------------------------
# table
# ------------------------------------------------------------------------------------------------
def _table(rows: list[dict[str, Any]], args: argparse.Namespace, env: str) -> str:
    head = ("| method | mode | ok | steps/s | peak GiB | finite | fp16 | eval PSNR | DDP max abs dw | s | note |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"GPU check ({'dry run, CPU, tiny presets' if args.dry_run else 'GPU, paper networks'}): {env}", "", head]
    for r in rows:
        fp16 = ""
        if "fp16_overflows" in r:
            fp16 = "in range" if not r["fp16_overflows"] else "OVERFLOW " + "; ".join(r["fp16_overflows"])
        elif "skipped_steps" in r:
            fp16 = f"{r['skipped_steps']} skipped"
        note = r.get("error") or r.get("eval_error") or r.get("note") or ""
        dd = r.get("ddp_max_abs_diff")
        lines.append("| " + " | ".join(str(x) for x in (
            r["method"], r["mode"], "yes" if r["ok"] else "**NO**", r.get("steps_per_s", ""), r.get("peak_mem_gib", ""),
            {True: "yes", False: "**NO**"}.get(r.get("losses_finite"), ""), fp16, r.get("eval_psnr", "") or "",
            f"{dd:.2e}" if dd is not None else "", r.get("seconds", ""), note.replace("|", "/"))) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args._ddp:
        return _ddp_worker(args._ddp)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; on a CPU-only machine run scripts/gpu_check.sh --dry-run",
              file=sys.stderr)
        return 2
    if args.dry_run:
        torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = args.steps or (2 if args.dry_run else 10)
    names = _methods(args.methods)
    data = _data(args, out)
    env = (f"torch {torch.__version__}, " + (torch.cuda.get_device_name(0) + f" x{torch.cuda.device_count()}"
                                            if torch.cuda.is_available() and not args.dry_run else "CPU"))
    t_start = time.perf_counter()
    modes = ("fp16-range",) if args.dry_run else ("bf16", "fp16")
    rows: list[dict[str, Any]] = []
    single: dict[str, dict[str, Any]] = {}
    for name in names:
        for mode in modes:
            if time.perf_counter() - t_start > args.budget_s:
                rows.append({"method": name, "mode": mode, "ok": False, "error": "not run: --budget-s exhausted"})
                continue
            row = _one(name, mode, args, data, out, steps)
            if args.dry_run and mode == "fp16-range":
                row["mode"] = "bf16+fp16-range"
            _evaluate(row, args, data, out)
            rows.append(row)
            print(f"gpu_check: {name} {row['mode']}: {'ok' if row['ok'] else 'FAILED ' + str(row.get('error', ''))}",
                  file=sys.stderr, flush=True)
    ddp_possible = args.dry_run or torch.cuda.device_count() >= 2
    if not args.no_ddp and ddp_possible:
        for n in (n for n in EQUALITY if n in names):  # one-process references: fp32, the DDP global batch
            single[n] = _one(n, "fp32", args, data, out, steps, _ddp_extra(args))
        for row in _ddp(names, args, data, out, steps, single):
            _evaluate(row, args, data, out)  # the DDP checkpoints are evaluated like the others
            rows.append(row)
    elif not args.no_ddp:
        rows.append({"method": "-", "mode": "ddp2", "ok": True, "error": "skipped: fewer than 2 GPUs"})
    text = _table(rows, args, env)
    (out / "gpu_check.md").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps(rows, indent=1, default=str))
    print(text)
    print(f"gpu_check: {sum(r['ok'] for r in rows)}/{len(rows)} ok in {time.perf_counter() - t_start:.0f} s; "
          f"table in {out / 'gpu_check.md'}", file=sys.stderr)
    return 0 if all(r["ok"] for r in rows) else 1


def _ddp_extra(args: argparse.Namespace) -> list[str]:
    """Settings of the DDP runs and their one-process references: plain SGD (Adam's first step is lr·sign(g),
    which turns gradients at rounding-noise level into full steps, so no two reduction orders could be
    compared), and in the dry run a global batch of 4 = 2 processes x 2."""
    return ["optimizer=sgd", "lr=0.01", "momentum=0.0"] + (["batch_size=4"] if args.dry_run else [])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
