"""Reference-weights recipes: how every shipped model was trained, as data, and the driver that replays them.

A recipe file (``recipes.yaml`` in the weights package) holds **stages** and **entries**::

    stages:
      priors-faces-train:                       # a prior-cache stage (no training)
        priors: [landmarks68, au, parsing]
      srcnn-x4:                                 # one `fsrbench train` run
        method: srcnn
        scale: 4
        preset: cpu-evidence
        amp: bf16                               # --amp
        threads: 1                              # OMP/MKL threads of the training process
        set: {steps: 600}                       # --set KEY=VALUE overrides
        init: {esrgan_init: affectsrnet-init-x4}  # KEY=<weights of another stage> (STAGE or STAGE@STEP)
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

STAGE_FILE = "reference-stage.json"


class RecipeError(ValueError):
    """A recipe file or a stage reference is wrong; the message names it."""


@dataclass
class Stage:
    name: str
    spec: dict[str, Any]

    @property
    def is_priors(self) -> bool:
        return "priors" in self.spec

    def init_refs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, ref in (self.spec.get("init") or {}).items():
            out[key] = list(ref) if isinstance(ref, (list, tuple)) else [ref]
        return out

    def needs(self) -> list[str]:
        deps = list(self.spec.get("needs") or [])
        for refs in self.init_refs().values():
            deps += [r.split("@")[0] for r in refs]
        return sorted(set(deps))


@dataclass
class Recipes:
    stages: dict[str, Stage]
    entries: dict[str, dict[str, Any]]
    path: Path | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Recipes":
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RecipeError(f"{p}: cannot read the recipe file ({exc})") from exc
        defaults = dict(raw.get("defaults") or {})
        stages = {}
        for name, spec in (raw.get("stages") or {}).items():
            if not isinstance(spec, Mapping):
                raise RecipeError(f"{p}: stage {name!r} must be a mapping")
            merged = dict(spec) if "priors" in spec else {**defaults, **spec}
            stages[name] = Stage(name, merged)
        entries = {k: dict(v) for k, v in (raw.get("entries") or {}).items()}
        rec = cls(stages, entries, p, defaults)
        rec.validate()
        return rec

    def validate(self) -> None:
        for st in self.stages.values():
            for dep in st.needs():
                if dep not in self.stages:
                    raise RecipeError(f"{self.path}: stage {st.name!r} needs unknown stage {dep!r}")
            if not st.is_priors:
                for key in ("method", "scale", "preset"):
                    if key not in st.spec:
                        raise RecipeError(f"{self.path}: stage {st.name!r} has no {key!r}")
        for name, e in self.entries.items():
            if e.get("stage") not in self.stages:
                raise RecipeError(f"{self.path}: entry {name!r} names unknown stage {e.get('stage')!r}")
        self.order(list(self.stages))  # raises on a cycle

    def order(self, wanted: Iterable[str]) -> list[str]:
        """``wanted`` and everything they need, dependencies first."""
        out: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: tuple[str, ...]) -> None:
            if n not in self.stages:
                raise RecipeError(f"unknown stage {n!r} (known: {', '.join(sorted(self.stages))})")
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise RecipeError(f"stage cycle: {' -> '.join(path + (n,))}")
            state[n] = 1
            for d in self.stages[n].needs():
                visit(d, path + (n,))
            state[n] = 2
            out.append(n)

        for w in wanted:
            visit(w, ())
        return out

    def chain(self, entry: str) -> list[dict[str, Any]]:
        """The stages of an entry in the order they ran, as stored on its card."""
        final = self.entries[entry]["stage"]
        return [{"stage": n, **self.stages[n].spec} for n in self.order([final])]


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


def weights_of(work: Path, ref: str) -> Path:
    """``STAGE`` -> WORK/STAGE/best.safetensors; ``STAGE@300`` -> WORK/STAGE/step_00000300.safetensors."""
    name, _, step = ref.partition("@")
    f = work / name / (f"step_{int(step):08d}.safetensors" if step else "best.safetensors")
    if not f.is_file():
        raise RecipeError(f"stage {name!r} has no weights {f.name} in {work / name}")
    return f


def train_command(st: Stage, work: Path, train_data: str, val_data: str, fsrbench: list[str]) -> list[str]:
    spec = st.spec
    out = work / st.name
    cmd = list(fsrbench) + ["train", str(spec["method"]), "--scale", str(spec["scale"]),
                            "--dataset", f"folder:{train_data}", "--val-dataset", f"folder:{val_data}",
                            "--preset", str(spec["preset"]), "--device", "cpu", "--no-progress",
                            "--out", str(out)]
    if spec.get("amp"):
        cmd += ["--amp", str(spec["amp"])]
    for key, value in (spec.get("set") or {}).items():
        cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    for key, refs in st.init_refs().items():
        paths = [str(weights_of(work, r)) for r in refs]
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


def _write_stage(work: Path, name: str, info: Mapping[str, Any]) -> None:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{STAGE_FILE}.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, d / STAGE_FILE)


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
        cmds = [train_command(st, work, train_data, val_data, fsrbench)]
    (work / name).mkdir(parents=True, exist_ok=True)
    prev = {}
    info_file = work / name / STAGE_FILE
    if info_file.is_file():
        prev = json.loads(info_file.read_text())
    import fsrbench as _f
    src = Path(_f.__file__).resolve().parent.parent
    info = {"stage": name, "spec": st.spec, "status": "running", "threads": threads, "nice": nice,
            "commit": _git_commit(src), "commands": [shlex.join(c) for c in cmds],
            "wall_s_previous": float(prev.get("wall_s", 0.0)) + float(prev.get("wall_s_interrupted", 0.0)),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_stage(work, name, info)
    start = time.time()
    rc = 0
    with open(work / name / "reference-stage.log", "a", encoding="utf-8") as logf:
        for cmd in cmds:
            logf.write(f"$ {shlex.join(cmd)}\n")
            logf.flush()
            rc = subprocess.call(["nice", "-n", str(nice)] + cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
            if rc:
                break
    wall = time.time() - start
    info.update(status="finished" if rc == 0 else f"failed (exit {rc})", rc=rc,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    info["wall_s"] = info.pop("wall_s_previous") + wall
    _write_stage(work, name, info)
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
