"""Test driver: ``[torchrun ...] tests/plugins/ddp_train.py JOBS.json`` trains several runs in one launch.

``JOBS.json``: a list of ``{"out": DIR, "method": NAME or FILE.py:Class, "scale": S, "dataset": SPEC,
"preset": "smoke", "sets": ["key=value", ...]}`` (or ``{"kind": "global-batchnorm", "out": FILE}``: the float64
check of tests/plugins/gbn_worker.py).  Each job runs ``fsrbench.train.loop.train`` on CPU.  Under
torchrun the process group is created once here and shared by the jobs (the engine reuses an existing group),
so a test pays for one launch, not one per run.
"""
from __future__ import annotations

import json
import os
import sys

import torch


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    from fsrbench.registry import import_target, instantiate, methods
    from fsrbench.recipes import resolve_config
    from fsrbench.train.loop import train

    torch.set_num_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    for job in json.loads(open(argv[0]).read()):
        if job.get("kind") == "global-batchnorm":  # tests/plugins/gbn_worker.py
            from plugins.gbn_worker import run_shard

            run_shard(job["out"])
            continue
        name = job["method"]
        method = import_target(name)() if ":" in name else instantiate(methods.get(name))
        cfg = resolve_config(method, job.get("preset", "smoke"), None, job.get("sets", []))
        train(method, int(job.get("scale", 8)), job["dataset"], config=cfg, device="cpu", out=job["out"],
              progress=False)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
