"""Reference-weights recipes: how every shipped model was trained, as data, and the driver that replays them.

A recipe file (``recipes.yaml`` in the weights package) holds **stages** and **entries**::

    stages:
      priors-faces-train:                       # a prior-cache stage (no training)
        priors: [landmarks68, au, parsing]
      srcnn-x4:                                 # one `fsrbench train` run
        method: srcnn
        scale: 4
        preset: cpu-evidence
        amp: auto                               # --amp; auto = bf16 where the CPU has native bf16, else none
        threads: 1                              # OMP/MKL threads of the training process
        set: {steps: 600}                       # --set KEY=VALUE overrides
        init: {esrgan_init: affectsrnet-init-x4}  # KEY=<weights of another stage> (STAGE or STAGE@STEP), or of a
                                                # shipped entry of this package (package:ENTRY, sha256-checked)
        needs: [priors-faces-train]             # stages that must finish first
    entries:
      srcnn-x4: {stage: srcnn-x4}               # a shipped model = the final stage of a chain

``run_stages`` runs the named stages and everything they need, in dependency order, up to ``jobs`` at a time,
each into ``WORK/STAGE`` (a finished stage is skipped, an interrupted one is resumed with ``--resume``), on the
training and validation folders it is given. Each stage's wall time, threads, precision and command are
written to ``WORK/STAGE/reference-stage.json``; the weights cards copy them.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from fsrbench.errors import RecipeError
from fsrbench.results import atomic_write_text
from fsrbench.weight_recipes import PACKAGE_REF, Recipes, Stage  # noqa: F401 - re-exported (the file as data)
from fsrbench.weights import training_only

STAGE_FILE = "reference-stage.json"


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------
def stage_done(work: Path, name: str) -> bool:
    info = work / name / STAGE_FILE
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("status") == "finished"
    except (OSError, ValueError):
        return False


def weights_of(work: Path, ref: str, package: Path | None = None) -> Path:
    """``STAGE`` -> WORK/STAGE/best.safetensors; ``STAGE@300`` -> WORK/STAGE/step_00000300.safetensors;
    ``package:ENTRY`` -> PACKAGE/ENTRY.safetensors (a shipped entry, verified against its card)."""
    if ref.startswith(PACKAGE_REF):
        from fsrbench.weights import read_card, verify

        entry = ref[len(PACKAGE_REF):]
        card = (package or Path(".")) / f"{entry}.card.json"
        if not card.is_file():
            raise RecipeError(f"init {ref!r}: no shipped entry {entry!r} ({card} is missing)")
        return verify(read_card(card))
    name, _, step = ref.partition("@")
    f = work / name / (f"step_{int(step):08d}.safetensors" if step else "best.safetensors")
    if not f.is_file():
        raise RecipeError(f"stage {name!r} has no weights {f.name} in {work / name}")
    return f


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX-BF16). Without it PyTorch emulates bf16
    and autocast is ~10x slower than float32 (measured on an AVX2-only AMD EPYC: 0.12 vs 1.18 img/s, SPARNet x4)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_amp(amp: str, cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """A recipe's ``amp``: ``auto`` -> ``bf16`` on a CPU with native bf16, else ``none``; others unchanged.
    The card records the precision a stage really trained with (its run.json), not ``auto``."""
    if amp == "auto":
        return "bf16" if cpu_has_native_bf16(cpuinfo) else "none"
    if amp not in ("none", "bf16", "fp16"):
        raise RecipeError(f"amp: {amp!r} is not one of auto, none, bf16, fp16")
    return amp


def train_command(st: Stage, work: Path, train_data: str, val_data: str, fsrbench: list[str],
                  package: Path | None = None) -> list[str]:
    spec = st.spec
    out = work / st.name
    cmd = list(fsrbench) + ["train", str(spec["method"]), "--scale", str(spec["scale"]),
                            "--dataset", f"folder:{train_data}", "--val-dataset", f"folder:{val_data}",
                            "--preset", str(spec["preset"]), "--device", "cpu", "--no-progress",
                            "--out", str(out)]
    if spec.get("amp"):
        cmd += ["--amp", resolve_amp(str(spec["amp"]))]
    for key, value in (spec.get("set") or {}).items():
        cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    for key, refs in st.init_refs().items():
        paths = [str(weights_of(work, r, package)) for r in refs]
        value = paths[0] if len(paths) == 1 and not isinstance(spec["init"][key], list) else "[" + ",".join(paths) + "]"
        cmd += ["--set", f"{key}={value}"]
    if (out / "run.json").is_file() and any(out.glob("step_*.card.json")):
        cmd.append("--resume")
    return cmd


def priors_command(st: Stage, data: str, python: str) -> list[str]:
    names = [str(n) for n in st.spec["priors"]]
    code = ("import sys; from fsrbench.train.data import open_dataset; from fsrbench.data.priors import DatasetPriors; "
            "from tqdm import tqdm; dp = DatasetPriors(open_dataset('folder:' + sys.argv[1]), "
            "progress=lambda it: tqdm(it, mininterval=30)); "
            "[print(n, 'ready', flush=True) for n in sys.argv[2:] if dp.get(n) is not None]")
    return [python, "-c", code, data] + names


#: seconds between the updates of a running stage's ``wall_s_interrupted`` (its time survives a kill)
HEARTBEAT_S = 60.0


def write_stage_info(work: Path, name: str, info: Mapping[str, Any]) -> None:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / STAGE_FILE, json.dumps(info, indent=2, default=str))


def _git_commit(cwd: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_stage(rec: Recipes, name: str, work: Path, train_data: str, val_data: str, python: str,
              nice: int = 10, log=print) -> int:
    st = rec.stages[name]
    threads = int(st.spec.get("threads") or 1)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    fsrbench = [python, "-m", "fsrbench"]
    datasets = []
    if st.is_priors:
        datasets = [d for d, key in ((train_data, "train"), (val_data, "val")) if key in (st.spec.get("datasets") or ["train", "val"])]
        cmds = [priors_command(st, d, python) for d in datasets]
    else:
        cmds = [train_command(st, work, train_data, val_data, fsrbench, rec.path.parent if rec.path else None)]
    (work / name).mkdir(parents=True, exist_ok=True)
    prev = {}
    info_file = work / name / STAGE_FILE
    if info_file.is_file():
        prev = json.loads(info_file.read_text())
    src = Path(__file__).resolve().parents[2]  # the source tree holding fsrbench/
    info = {"stage": name, "spec": st.spec, "status": "running", "threads": threads, "nice": nice,
            "commit": _git_commit(src), "commands": [shlex.join(c) for c in cmds],
            "wall_s_previous": float(prev.get("wall_s", 0.0)) + float(prev.get("wall_s_interrupted", 0.0)),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_stage_info(work, name, info)
    start = time.time()
    rc = 0
    with open(work / name / "reference-stage.log", "a", encoding="utf-8") as logf:
        for cmd in cmds:
            logf.write(f"$ {shlex.join(cmd)}\n")
            logf.flush()
            proc = subprocess.Popen(["nice", "-n", str(nice)] + cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
            while True:
                try:
                    rc = proc.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    # a stage killed with its machine still counts the time it ran: the resumed run adds it
                    info["wall_s_interrupted"] = info["wall_s_previous"] + time.time() - start
                    write_stage_info(work, name, info)
            if rc:
                break
    wall = time.time() - start
    info.update(status="finished" if rc == 0 else f"failed (exit {rc})", rc=rc,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    info.pop("wall_s_interrupted", None)
    info["wall_s"] = info.pop("wall_s_previous") + wall
    write_stage_info(work, name, info)
    log(f"[reference] {name}: {info['status']} in {wall / 60:.1f} min (threads {threads})")
    return rc


def run_stages(rec: Recipes, wanted: Iterable[str], work: Path, train_data: str, val_data: str,
               jobs: int = 1, python: str = sys.executable, log=print) -> dict[str, int]:
    """Run ``wanted`` and their dependencies; up to ``jobs`` stages at a time. Returns {stage: rc}."""
    todo = [n for n in rec.order(wanted) if not stage_done(work, n)]
    results: dict[str, int] = {}
    running: dict[str, threading.Thread] = {}
    lock = threading.Lock()

    def worker(n: str) -> None:
        rc = run_stage(rec, n, work, train_data, val_data, python, log=log)
        with lock:
            results[n] = rc

    while todo or running:
        with lock:
            for n in list(running):
                if n in results:
                    running.pop(n)
            failed = {n for n, rc in results.items() if rc}
        for n in list(todo):
            deps = rec.stages[n].needs()
            if any(d in failed or (d in todo) for d in deps):
                if any(d in failed for d in deps):
                    log(f"[reference] {n}: skipped, a stage it needs failed")
                    todo.remove(n)
                    results[n] = -1
                continue
            if any(d in running for d in deps) or len(running) >= jobs:
                continue
            todo.remove(n)
            t = threading.Thread(target=worker, args=(n,), daemon=False)
            running[n] = t
            log(f"[reference] {n}: starting")
            t.start()
        time.sleep(2)
    return results


# ------------------------------------------------------------------------------------------------
# exporting a trained chain as a shipped entry (fp16 safetensors + card), scoring it, listing, checking
# ------------------------------------------------------------------------------------------------
LABEL = ("fsrbench CPU reference weights: trained by fsrbench on faces-train (5,000 UTKFace crops) with the "
         "budget stated on this card. Not the paper's weights; not comparable with the paper's numbers.")
FP16_MAX = 65504.0


def sha256_of(path: str | os.PathLike[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Name and manifest hash of a training/validation folder (no machine path)."""
    d = Path(folder)
    rec: dict[str, Any] = {"name": d.name}
    man = d / "manifest.csv"
    if man.is_file():
        rec["manifest_sha256"] = sha256_of(man)
    return rec


def _final_card(stage_dir: Path) -> Path:
    best = stage_dir / "best.card.json"
    if best.is_file():
        return best
    steps = sorted(stage_dir.glob("step_*.card.json"))
    if not steps:
        raise RecipeError(f"{stage_dir}: no weight card (did the stage finish?)")
    return steps[-1]


def stage_record(rec: Recipes, work: Path, name: str) -> dict[str, Any]:
    """What a card says about one finished training stage (no machine paths)."""
    d = work / name
    info = json.loads((d / STAGE_FILE).read_text())
    if info.get("status") != "finished":
        raise RecipeError(f"stage {name!r} is not finished ({info.get('status')})")
    out: dict[str, Any] = {"stage": name, **{k: v for k, v in rec.stages[name].spec.items()}}
    out["wall_s"] = round(float(info.get("wall_s", 0.0)), 1)
    if info.get("wall_s_note"):  # how a wall time that was not measured whole was obtained
        out["wall_s_note"] = str(info["wall_s_note"])
    out["threads"] = int(info.get("threads", 1))
    out["commit"] = info.get("commit")
    if not rec.stages[name].is_priors:
        run = json.loads((d / "run.json").read_text())
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        out.update(steps=int(run.get("total_steps") or cfg.get("steps") or 0), batch_size=int(cfg.get("batch_size") or 0),
                   config_sha256=run.get("config_sha256"), amp=run.get("amp"), world_size=run.get("world_size"),
                   torch=run.get("torch"))
        if isinstance(run.get("init"), Mapping) and run["init"].get("sha256"):
            out["init_sha256"] = str(run["init"]["sha256"])  # the initial weights it started from
    return out


def budget_line(stages: list[Mapping[str, Any]]) -> str:
    """E.g. "2 stages: 150 x 4 + 150 x 4 steps, bf16 autocast, 1 CPU thread, 29.6 min"."""
    steps = " + ".join(f"{c.get('steps')} x {c.get('batch_size')}" for c in stages)
    amps = sorted({"float32" if str(c.get("amp") or "none") == "none" else f"{c['amp']} autocast" for c in stages})
    threads = sorted({int(c.get("threads") or 1) for c in stages})
    minutes = sum(float(c.get("wall_s") or 0) for c in stages) / 60
    warm = sorted({r[len(PACKAGE_REF):] for c in stages for ref in (c.get("init") or {}).values()
                   for r in (ref if isinstance(ref, (list, tuple)) else [ref]) if str(r).startswith(PACKAGE_REF)})
    return (f"{len(stages)} stage{'s' if len(stages) > 1 else ''}: {steps} steps (x batch), "
            f"{'/'.join(amps)}, {'/'.join(map(str, threads))} CPU thread{'s' if threads != [1] else ''}, "
            f"{minutes:.1f} min of training" + (f", started from the shipped {', '.join(warm)} weights (their "
                                                 "budget not included)" if warm else ""))


def _ref_name(ref: str) -> str:
    return ref if ref.startswith(PACKAGE_REF) else f"stage:{ref}"


def _replace_init_paths(config: dict[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Initial-weight paths of the last stage (machine paths) -> ``stage:NAME`` references."""
    cfg = dict(config)
    for key, ref in (spec.get("init") or {}).items():
        if key in cfg:
            cfg[key] = [_ref_name(r) for r in ref] if isinstance(ref, (list, tuple)) else _ref_name(ref)
    return cfg


def _fp16(name: str, t: Any) -> Any:
    import torch

    if not t.is_floating_point():
        return t
    if not bool(torch.isfinite(t).all()):
        raise RecipeError(f"tensor {name} has non-finite values; refusing to export")
    if t.numel() and float(t.abs().max()) > FP16_MAX:
        raise RecipeError(f"tensor {name} exceeds the float16 range (|x| > {FP16_MAX:g}); export it as bf16")
    return t.to(torch.float16)


def export_entry(rec: Recipes, entry: str, work: Path, out_dir: Path, train_data: str, val_data: str) -> Path:
    """Write ``OUT/ENTRY.safetensors`` (float16, deterministic bytes) and ``OUT/ENTRY.card.json`` from the final
    stage of ``entry``'s chain; returns the card path. Scores are added by :func:`score_entry`."""
    from safetensors import safe_open

    from fsrbench.train import checkpoints as ck
    from fsrbench.train.config import canonical_json, config_hash

    spec = rec.entries[entry]
    final = spec["stage"]
    src_card = ck.read_card(_final_card(work / final))
    src = ck.verify(src_card)
    from fsrbench.registry import methods as method_registry

    # modules only training uses (a GAN's discriminator) are not shipped: evaluation never runs them
    skip = training_only(method_registry.get(str(src_card["method"])))
    tensors = {}
    with safe_open(str(src), "pt") as fh:
        for k in fh.keys():
            if not (skip and k.startswith(skip)):
                tensors[k] = _fp16(k, fh.get_tensor(k))
    n_params = sum(int(t.numel()) for t in tensors.values() if t.is_floating_point())
    out_dir.mkdir(parents=True, exist_ok=True)
    wname = f"{entry}.safetensors"
    digest = ck.write_safetensors(tensors, out_dir / wname, {"format": ck.CARD_FORMAT, "entry": entry,
                                                             "method": str(src_card["method"]),
                                                             "scale": str(src_card["scale"]), "dtype": "float16"})
    chain = [stage_record(rec, work, n) for n in rec.order([final])]
    train_stages = [c for c in chain if "method" in c]
    config = _replace_init_paths(src_card.get("config") or {}, rec.stages[final].spec)
    if str(config.get("val_dataset") or "").startswith("folder:"):
        config["val_dataset"] = f"folder:{Path(val_data).name}"
    dataset = dict(src_card.get("dataset") or {})
    dataset["name"] = f"folder:{Path(train_data).name}"
    if isinstance(dataset.get("val"), dict):
        dataset["val"] = dict(dataset["val"], name=f"folder:{Path(val_data).name}")
    card = {k: v for k, v in src_card.items() if not k.startswith("_")}
    card.update(kind="reference", weights=wname, sha256=digest, config=config, config_sha256=config_hash(config),
                dataset=dataset)
    card["reference"] = {
        "label": LABEL,
        "entry": entry,
        "dtype": "float16",
        "parameters": n_params,
        "size_bytes": (out_dir / wname).stat().st_size,
        "source": {"stage": final, "sha256": src_card["sha256"], "dtype": "float32", "step": src_card.get("step")},
        "reduced": spec.get("reduced"),
        "training": {
            "data": data_record(train_data),
            "validation_during_training": data_record(val_data),
            "stages": chain,
            "steps": sum(int(c.get("steps") or 0) for c in train_stages),
            "wall_s": round(sum(float(c.get("wall_s") or 0) for c in chain), 1),
            "threads": sorted({int(c.get("threads") or 1) for c in chain}),
            "commits": sorted({str(c.get("commit")) for c in chain}),
        },
        "budget": budget_line(train_stages),
        "reproduce": f"fsrbench weights reproduce {entry} --train-data DIR/faces-train --val-data DIR/faces-val",
        "faces_val": None,
    }
    card_path = out_dir / f"{entry}.card.json"
    ck.atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return card_path


def score_entry(card_path: Path, val_data: str, work: Path, python: str = sys.executable,
                protocol: str = "dic-v1", log=print) -> dict[str, Any]:
    """PSNR/SSIM of the exported (float16) model and of bicubic on every image of ``val_data`` with
    ``fsrbench run``; the paired PSNR difference with its 95% CI is written into the card's
    ``reference.faces_val``. Returns that record."""
    import pandas as pd

    from fsrbench.metrics.stats import mean_ci
    from fsrbench.train import checkpoints as ck
    from fsrbench.registry import methods as method_registry

    card = ck.read_card(card_path)
    method = str(card["method"])
    cls = method_registry.get(method)
    scales = [4, 8] if getattr(cls, "any_scale", False) else [int(card["scale"])]
    out = work / "_score" / card["reference"]["entry"]
    cmd = [python, "-m", "fsrbench", "run", "--methods", f"{method},bicubic", "--weights", f"{method}={card_path}",
           "--datasets", f"folder:{val_data}", "--scales", ",".join(map(str, scales)), "--metrics", "psnr,ssim",
           "--protocol", protocol, "--out", str(out), "--no-save-sr", "--no-progress", "--no-leaderboard", "--strict"]
    rc = subprocess.call(cmd, stdout=subprocess.DEVNULL)
    if rc:
        raise RecipeError(f"scoring {card_path} failed (exit {rc}): {shlex.join(cmd)}")
    df = pd.read_csv(out / "per_image.csv")
    result: dict[str, Any] = {"data": data_record(val_data), "protocol": protocol, "by_scale": {}}
    for s in scales:
        part = df[df["scale"] == s]
        m = part[part["method"] == method].set_index("image_id")
        b = part[part["method"] == "bicubic"].set_index("image_id")
        ids = m.index.intersection(b.index)
        d = (m.loc[ids, "psnr"] - b.loc[ids, "psnr"]).to_numpy(dtype=float)
        ci = mean_ci(d)
        rec_s = {"n": int(len(ids)), "psnr": float(m.loc[ids, "psnr"].mean()), "ssim": float(m.loc[ids, "ssim"].mean()),
                 "bicubic_psnr": float(b.loc[ids, "psnr"].mean()), "bicubic_ssim": float(b.loc[ids, "ssim"].mean()),
                 "delta_psnr": round(float(ci["value"]), 4),
                 "delta_psnr_ci95": [round(float(ci["ci_low"]), 4), round(float(ci["ci_high"]), 4)],
                 "share_above_bicubic": round(float((d > 0).mean()), 4)}
        rec_s["beats_bicubic"] = bool(rec_s["delta_psnr"] > 0)
        for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
            rec_s[k] = round(rec_s[k], 4)
        result["by_scale"][str(s)] = rec_s
    result["beats_bicubic"] = all(v["beats_bicubic"] for v in result["by_scale"].values())
    raw = json.loads(Path(card_path).read_text())
    raw["reference"]["faces_val"] = result
    ck.atomic_write_text(card_path, json.dumps(raw, indent=2, sort_keys=True, default=str) + "\n")
    log(f"[reference] {card['reference']['entry']}: " + ", ".join(
        f"x{s} {v['psnr']:.2f} dB vs bicubic {v['bicubic_psnr']:.2f} (delta {v['delta_psnr']:+.2f} "
        f"[{v['delta_psnr_ci95'][0]:+.2f}, {v['delta_psnr_ci95'][1]:+.2f}])" for s, v in result["by_scale"].items()))
    return result


def improves(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """A new card replaces a shipped one only if its smallest faces-val PSNR gain over bicubic is larger."""
    def worst(card: Mapping[str, Any] | None) -> float:
        fv = ((card or {}).get("reference") or {}).get("faces_val") or {}
        vals = [float(v["delta_psnr"]) for v in (fv.get("by_scale") or {}).values()]
        return min(vals) if vals else float("-inf")
    return old is None or worst(new) > worst(old)


def package_cards(root: Path | None = None) -> list[dict[str, Any]]:
    """The reference cards of one weights folder (default: every installed weights package)."""
    from fsrbench.train import checkpoints as ck

    roots = [root] if root is not None else ck.weight_package_dirs()
    out = []
    for r in roots:
        for p in sorted(Path(r).glob("*.card.json")):
            out.append(ck.read_card(p))
    return out


def check_card(card: Mapping[str, Any], load: bool = True) -> str | None:
    """None if ``card``'s weights verify (sha256) and load strictly into its registered method; else why not."""
    from fsrbench.registry import methods as method_registry
    from fsrbench.train import checkpoints as ck

    try:
        wfile = ck.verify(card)
    except (ValueError, FileNotFoundError) as exc:
        return str(exc)
    if not load:
        return None
    try:
        method = method_registry.get(str(card["method"]))()
        model = method.build_model(int(card["scale"]), card.get("config") or {})
        ck.load_weights(model, wfile, "cpu", training_only(method))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"{wfile}: does not load into {card.get('method')} x{card.get('scale')}: {type(exc).__name__}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Train reference-weights stages from a recipe file.")
    p.add_argument("stages", nargs="+", help="stage names (their dependencies run first)")
    p.add_argument("--recipes", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--train-data", required=True)
    p.add_argument("--val-data", required=True)
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args(argv)
    rec = Recipes.load(a.recipes)
    stages = list(rec.stages) if a.stages == ["all"] else a.stages
    res = run_stages(rec, stages, Path(a.work), a.train_data, a.val_data, jobs=a.jobs)
    return 1 if any(res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
