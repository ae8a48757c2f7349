"""``fsrbench train METHOD --scale S --dataset SPEC ...`` — the CLI of the training engine.

Single process: ``fsrbench train srcnn --scale 8 --dataset folder:/data/faces --preset smoke``.
Several GPUs/processes: ``torchrun --nproc_per_node N -m fsrbench train ...`` (DDP; NCCL on GPU, gloo on CPU).
See docs/training.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a method (single process, or DDP under torchrun)",
        description="Train a trainable method with the shared engine. Config = engine defaults < the method's "
                    "YAML preset < --config FILE < --set key=value. Checkpoints go to --out "
                    "(default ./checkpoints/METHOD-xSCALE), where `fsrbench run` finds them.")
    p.add_argument("method", help="registered method name (see `fsrbench list methods`)")
    p.add_argument("--scale", type=int, required=True, help="upscaling factor (4 or 8)")
    p.add_argument("--dataset", required=True,
                   help="training dataset spec NAME[:ROOT][@SPLIT], e.g. folder:/path/to/faces, celeba (= its train "
                        "split), celeba:/data/CelebA@train (docs/datasets.md)")
    p.add_argument("--val-dataset", default=None,
                   help="validation dataset spec (default: `val_holdout` images held out of --dataset); a reader's "
                        "default split here is `val`, e.g. celeba -> celeba@val")
    p.add_argument("--allow-test-split", action="store_true",
                   help="allow training or validating on a split that holds test images (celeba@test, helen@test-all, "
                        "ffhq@val ...); the weights are then marked on every board")
    p.add_argument("--config", default=None, help="YAML file of config overrides")
    p.add_argument("--preset", default="default", help="preset of the method's YAML: default (paper recipe) or smoke")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable); value parsed as YAML")
    p.add_argument("--device", default="auto", help="cuda | cpu | cuda:N (default: cuda when available)")
    p.add_argument("--amp", default=None, choices=["none", "bf16", "fp16"], help="autocast precision (overrides config)")
    p.add_argument("--out", default=None, help="run directory (default: ./checkpoints/METHOD-xSCALE)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py:Name",
                   help="load a method plugin first (repeatable)")
    p.add_argument("--plugin-override", action="store_true",
                   help="let a --plugin replace a registered method of the same name (refused otherwise)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show the progress bars (default: only when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=handler)


def training_dataset(spec: str, purpose: str = "train", allow_test: bool = False) -> Any:
    """The dataset of ``--dataset`` (``purpose="train"``: a reader's split defaults to ``train``) or
    ``--val-dataset`` (``"val"``: ``val``, else a refusal naming the choices); a split that holds test images is
    refused unless ``allow_test``."""
    from fsrbench.data import open_dataset
    from fsrbench.data.opener import dataset_class, is_reader
    from fsrbench.data.spec import parse_spec

    ds_spec = parse_spec(spec)
    cls = dataset_class(ds_spec.name)
    flag = "--dataset" if purpose == "train" else "--val-dataset"
    if is_reader(cls) and not ds_spec.split:
        if purpose == "val" and "val" not in cls.splits:
            raise ValueError(f"{flag} {spec}: {ds_spec.name} has no `val` split; name one ({', '.join(cls.splits)}), "
                             f"e.g. {flag} {ds_spec.name}@train (other images than --dataset!), or omit {flag} to "
                             "hold out `val_holdout` training images")
        ds_spec.split = "train" if purpose == "train" else "val"
    ds = open_dataset(ds_spec)
    if getattr(ds, "is_test_split", False) and not allow_test:
        raise ValueError(f"{flag} {spec}: split {ds.split!r} of {ds_spec.name} holds test images; training or "
                         f"validating on them invalidates every benchmark number of these weights. Use "
                         f"{ds_spec.name}@{'train' if 'train' in cls.splits else cls.splits[-1]}"
                         f"{' (the default)' if purpose == 'train' else ''}, or pass --allow-test-split if you really "
                         "mean it (the weights are then marked on every board)")
    return ds


def handler(args: argparse.Namespace) -> int:
    from fsrbench.registry import instantiate, load_plugin, methods
    from fsrbench.recipes import config_hash, dump_yaml, resolve_config
    from fsrbench.train.loop import TrainingDiverged, train

    if args.device != "auto":
        from fsrbench.eval.components import resolve_device

        resolve_device(args.device)  # an unknown device is a clear exit 2, not a traceback from torch
    for spec in args.plugin:
        load_plugin(spec, "methods", override=args.plugin_override)
    method = instantiate(methods.get(args.method))
    if not getattr(method, "trainable", False) or not hasattr(method, "build_model"):
        raise ValueError(f"method {args.method!r} is not trainable (it has no build_model/training_loss)")
    sets = list(args.sets)
    if args.amp:
        sets.append(f"amp={args.amp}")
    if args.val_dataset:
        sets.append(f"val_dataset={args.val_dataset}")
    cfg = resolve_config(method, args.preset, args.config, sets)
    if cfg.get("val_dataset"):  # pin the split of the validation spec: the loop opens exactly this
        vds = training_dataset(str(cfg["val_dataset"]), "val", args.allow_test_split)
        from fsrbench.data.spec import parse_spec

        split = getattr(vds, "split", None)
        if split and parse_spec(str(cfg["val_dataset"])).split is None:
            cfg["val_dataset"] = f"{cfg['val_dataset']}@{split}"
    if args.print_config:
        print(dump_yaml(cfg), end="")
        print(f"# config sha256: {config_hash(cfg)}")
        return 0
    dataset = training_dataset(args.dataset, "train", args.allow_test_split)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        res = train(method, args.scale, dataset, config=cfg, device=args.device, out=args.out,
                    resume=args.resume, progress=progress, argv=["fsrbench", *sys.argv[1:]])
    except TrainingDiverged as exc:
        print(f"fsrbench train: stopped: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("fsrbench train: interrupted; continue from the last checkpoint with the same command plus --resume",
              file=sys.stderr)
        return 130
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        best = f"; best {res.best.get('metric')}={res.best.get('value'):.4f} at step {res.best.get('step')}" \
            if res.best else ""
        print(f"fsrbench train: {args.method} x{args.scale}: {res.step} steps done; checkpoints in {res.run_dir}{best}")
    return 0
