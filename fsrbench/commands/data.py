"""``fsrbench data check DATASET`` — validate a dataset on disk before a run.

Prints the counts (listed / usable / skipped), every problem with the file name, the reason and a fix,
the images that were converted (grayscale, RGBA, 16-bit …), and the hashes a run would record (split
list, dataset fingerprint, protocol). Exit status 0 = usable (possibly with problems; ``--strict`` makes
any problem an error), 1 = unusable (nothing loads, or the dataset cannot even be listed).

Examples::

    fsrbench data check celeba --data-root /data/CelebA
    fsrbench data check celeba:/data/CelebA@test-full          # NAME[:ROOT][@SPLIT], as `run --datasets`
    fsrbench data check helen:/data/Helen@test-all
    fsrbench data check helen --config ~/fsrbench.yaml --split test-all
    fsrbench data check helen --data-root /data/helen -o split_file=/data/helen/test50.txt
    fsrbench data check released:/data/DIC/Helen --write-manifest helen-test.sha256
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fsrbench.api import DataError, Unavailable


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="dataset tools (check)", description="Dataset tools.")
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    c = sub.add_parser("check", help="validate a dataset: counts, missing/unreadable files, hashes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("dataset", help="dataset spec NAME[:ROOT][@SPLIT]: celeba, celeba:/data/CelebA@test, "
                                   "helen:/data/Helen@test-all, ffhq, released:DIR, folder:DIR")
    c.add_argument("--data-root", help="folder of the dataset (overrides the config file)")
    c.add_argument("--config", help="YAML file mapping dataset names to folders (see docs/datasets.md)")
    c.add_argument("--split", default=None, help="split to check (default: the dataset's test split)")
    c.add_argument("--protocol", default=None, help="protocol whose hash to report (default dic-v1)")
    c.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. crop=center, split_file=FILE, annotations=FILE (repeatable)")
    c.add_argument("--no-read", action="store_true", help="only list files and annotations; do not decode images")
    c.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    c.add_argument("--max-problems", type=int, default=30, help="problems to print (default 30; all are counted)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--write-manifest", metavar="FILE", help="released:DIR only: write the sha256 manifest of its files")
    c.set_defaults(func=check_handler)
    pr = sub.add_parser("priors", help="precompute and cache the training priors of a dataset (landmarks, parsing, AUs)",
                        description=PRIORS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("dataset", help="dataset spec exactly as given to `fsrbench train --dataset` (e.g. folder:DIR, celeba)")
    pr.add_argument("--method", action="append", default=[], metavar="NAME",
                    help="the priors this method trains and validates with (repeatable)")
    pr.add_argument("--priors", default="", help="comma-separated prior names instead of / besides --method "
                                                 "(landmarks68, landmarks478_hr, landmarks478_lr, parsing, skin, au)")
    pr.add_argument("--scale", type=int, default=None, help="upscaling factor (needed by landmarks478_lr)")
    pr.add_argument("--workers", type=int, default=1, help="processes computing chunks in parallel (default 1)")
    pr.add_argument("--plugin", action="append", default=[], metavar="FILE.py:Name", help="load a method plugin first")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(func=priors_handler)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


PRIORS_DOC = """Precompute the priors a training run needs and cache them (docs/training.md, "Priors").

Training reads the same cache: run this once per dataset — on all cores (--workers N) — before a
multi-GPU run, so that no process waits for face models.  It is resumable (finished chunks of 64
images are kept; run it again after an interruption) and its results do not depend on --workers.

Examples::

    fsrbench data priors folder:/data/faces-train --method fsrnet --workers 8
    fsrbench data priors celeba --method affectsrnet --scale 8 --workers 16
    fsrbench data priors folder:/data/faces-train --priors landmarks68,parsing
"""


def priors_handler(args: argparse.Namespace) -> int:
    from fsrbench.data.priors import PRIOR_NAMES, DatasetPriors, precompute
    from fsrbench.registry import instantiate, load_plugin, methods
    from fsrbench.data import open_dataset

    for spec in args.plugin:
        load_plugin(spec, "methods")
    names: list[str] = []
    for m in args.method:
        method = instantiate(methods.get(m))
        for n in tuple(getattr(method, "train_priors", ()) or ()) + tuple(getattr(method, "priors", ()) or ()):
            if n in PRIOR_NAMES and n not in names:
                names.append(n)
    for n in (x.strip() for x in args.priors.split(",") if x.strip()):
        if n not in PRIOR_NAMES:
            print(f"fsrbench data priors: --priors {n}: unknown prior; choose from {', '.join(PRIOR_NAMES)}",
                  file=sys.stderr)
            return 2
        if n not in names:
            names.append(n)
    if not names:
        what = f"method(s) {', '.join(args.method)} use(s) no dataset priors" if args.method else \
            "give --method NAME (the priors it trains with) or --priors a,b"
        print(f"fsrbench data priors: nothing to compute: {what}", file=sys.stderr)
        return 0 if args.method else 2
    if "landmarks478_lr" in names and not args.scale:
        print("fsrbench data priors: landmarks478_lr is computed from the LR image: give --scale (4 or 8)",
              file=sys.stderr)
        return 2
    if args.workers < 1:
        print("fsrbench data priors: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        ds = open_dataset(args.dataset)
        tables = precompute(ds, names, args.scale, workers=args.workers, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, Unavailable, DataError) as exc:
        print(f"fsrbench data priors: {args.dataset}: {exc}", file=sys.stderr)
        return 2
    where = DatasetPriors(ds).dir
    print(f"dataset      {ds.display_name}  ({len(ds.ids())} images)  cache {where}")
    for n, t in tables.items():
        print(f"{n:<18} {int(t.ok.sum())}/{len(t)} images ok  source {t.source}")
    return 0


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        if "=" not in kv:
            raise ValueError(f"--option {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        out[k.strip()] = v
    return out


def build_dataset(spec: str, data_root: str | None = None, config: str | None = None, split: str | None = None,
                  protocol: str | None = None, options: dict[str, Any] | None = None) -> Any:
    """Construct a registered dataset from ``NAME[:ROOT][@SPLIT]`` with the data-root/config/split options."""
    from fsrbench.data.opener import dataset_class, is_reader, open_dataset
    from fsrbench.data.spec import parse_spec

    ds = parse_spec(spec)
    kw: dict[str, Any] = dict(options or {})
    if is_reader(dataset_class(ds.name)):
        kw["protocol"] = protocol
    return open_dataset(ds, split=split, data_root=data_root, config=config, **kw)


def _generic_check(ds: Any, read: bool) -> Any:
    from fsrbench.data.base import CheckReport, Problem, _fix_for
    from fsrbench.protocols import get_protocol

    rep = CheckReport(getattr(ds, "name", "?"), str(getattr(ds, "root", getattr(ds, "arg", ""))), "-", read=read)
    ids = ds.ids()
    rep.problems = [Problem(f, r, _fix_for(r)) for f, r in getattr(ds, "skipped", [])]
    rep.listed = len(ids) + len(rep.problems)
    for sid in ids:
        if not read:
            rep.usable += 1
            continue
        try:
            ds.load(sid)
            rep.usable += 1
        except DataError as exc:
            rep.problems.append(Problem(sid, str(exc), _fix_for(str(exc))))
    rep.fingerprint = ds.fingerprint()
    proto = get_protocol(None)
    rep.protocol = {"id": proto.id, "sha256": proto.sha256}
    return rep


def _print_report(rep: Any, max_problems: int, out: Any = None) -> None:
    w = (out or sys.stdout).write
    w(f"dataset      {rep.dataset}  root {rep.root}  split {rep.split}\n")
    n_bad = len(rep.problems)
    w(f"files        listed {rep.listed}  usable {rep.usable}  skipped {n_bad}"
      f"{'' if rep.read else '  (images not decoded: --no-read)'}\n")
    sl = rep.fingerprint.get("split_list") or {}
    if sl.get("sha256"):
        w(f"split list   {sl.get('split')}  n={sl.get('n')}  sha256 {sl['sha256']}\n")
    if rep.fingerprint.get("crop"):
        w(f"crop         {rep.fingerprint['crop']} {json.dumps(rep.fingerprint.get('crop_params', {}), sort_keys=True)}\n")
    w(f"ids sha256   {rep.fingerprint.get('ids_sha256', '-')}\n")
    if rep.fingerprint.get("sha256"):
        w(f"fingerprint  sha256 {rep.fingerprint['sha256']}\n")
    w(f"protocol     {rep.protocol.get('id')}  sha256 {rep.protocol.get('sha256')}\n")
    if rep.problems:
        from collections import Counter

        counts = Counter(pr.reason for pr in rep.problems)
        w(f"problems ({n_bad}):\n")
        for reason, n in counts.most_common(5):
            if n > 1:
                w(f"  {n} x {reason}\n")
        # rare problems first: one truncated file must not hide behind 995 missing ones
        ordered = sorted(rep.problems, key=lambda pr: counts[pr.reason])
        for pr in ordered[:max_problems]:
            w(f"  {pr.file}: {pr.reason}\n")
            if pr.fix:
                w(f"      fix: {pr.fix}\n")
        if n_bad > max_problems:
            w(f"  … and {n_bad - max_problems} more (--max-problems N to see them)\n")
    if rep.notes:
        w(f"converted ({len(rep.notes)}, still used):\n")
        for pr in rep.notes[:max_problems]:
            w(f"  {pr.file}: {pr.reason}\n")
    verdict = "UNUSABLE: no image of this split can be loaded" if not rep.ok else (
        f"usable: {rep.usable} images" + (f", {n_bad} skipped" if n_bad else ""))
    w(f"result       {verdict}\n")


def check_handler(args: argparse.Namespace) -> int:
    try:
        ds = build_dataset(args.dataset, args.data_root, args.config, args.split, args.protocol,
                           _options(args.option))
        read = not args.no_read
        if hasattr(ds, "check"):
            from tqdm import tqdm

            prog = (lambda it: tqdm(it, desc="reading", unit="img", file=sys.stderr, leave=False)) if read else None
            rep = ds.check(read=read, progress=prog)
        else:
            rep = _generic_check(ds, read)
    except (FileNotFoundError, ValueError, Unavailable, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fsrbench data check: {args.dataset} is unusable: {msg}", file=sys.stderr)
        help_text = _download_help(args.dataset)
        if help_text:
            print(f"what to download and where it goes: {help_text}", file=sys.stderr)
        return 1
    if args.write_manifest:
        if not hasattr(ds, "manifest_lines"):
            print("fsrbench data check: --write-manifest only works with released:DIR", file=sys.stderr)
            return 1
        from fsrbench.results import atomic_write_bytes

        atomic_write_bytes(args.write_manifest, ("\n".join(ds.manifest_lines()) + "\n").encode())
        print(f"manifest     wrote {args.write_manifest}")
    if args.json:
        from dataclasses import asdict

        d = asdict(rep)
        d["ok"] = rep.ok
        print(json.dumps(d, indent=2, default=str))
    else:
        _print_report(rep, args.max_problems)
    if not rep.ok or any("missing" in pr.reason for pr in rep.problems):
        help_text = _download_help(args.dataset)
        if help_text:
            print(f"what to download and where it goes: {help_text}", file=sys.stderr)
    if not rep.ok or (args.strict and rep.problems):
        return 1
    return 0


def _download_help(spec: str) -> str:
    """The reader's ``download`` text (what to fetch, where it goes), or "" for datasets without one."""
    from fsrbench.data.spec import parse_spec

    try:
        from fsrbench.data.opener import dataset_class

        return str(getattr(dataset_class(parse_spec(spec).name), "download", "") or "")
    except Exception:  # noqa: BLE001 - an unknown name was reported already
        return ""
