"""The committed leaderboards: ``leaderboards/results/<name>/`` (stored results) -> ``leaderboards/<name>.md``.

A stored result is a small copy of a results directory: ``metrics.json``, ``run.json``, ``profile.json``
(if measured) and ``per_image.csv.gz`` trimmed to the columns the boards and plots read (never SR images):
the identifying columns and each metric's ``stored_column_names()`` (its declaration, see
:class:`fsrbench.report.metric_index.MetricIndex`),
plus ``board.yaml`` with the rendering options (``title``, ``compare_reported``, ``reported_dataset``).
:func:`regenerate` re-renders every board; ``check=True`` only compares (the drift test and
``scripts/regenerate_leaderboards.py --check``).
"""
from __future__ import annotations

import difflib
import gzip
import shutil
from pathlib import Path
from typing import Any

import yaml

from fsrbench.report.leaderboard import leaderboard
from fsrbench.report.metric_index import MetricIndex
from fsrbench.results import load_json, read_per_image

ROOT = Path(__file__).resolve().parents[2] / "leaderboards"
ID_COLUMNS = ("dataset", "scale", "method", "image_id", "status", "error", "note", "lr_size")


def store_results(run_dir: str | Path, name: str, title: str | None = None, compare_reported: bool = False,
                  reported_dataset: str | None = None, root: str | Path = ROOT) -> Path:
    """Copy the small files of ``run_dir`` into ``root/results/name`` (see module docstring)."""
    src = Path(run_dir)
    dst = Path(root) / "results" / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("metrics.json", "run.json", "profile.json"):
        if (src / f).is_file():
            shutil.copyfile(src / f, dst / f)
    if (src / "per_image.csv").is_file():
        df = read_per_image(src / "per_image.csv")
        cells = load_json(src / "metrics.json").get("cells", []) if (src / "metrics.json").is_file() else []
        _write_trimmed(df, cells, dst / "per_image.csv.gz")
    opts: dict[str, Any] = {"title": title or name, "compare_reported": bool(compare_reported or reported_dataset)}
    if reported_dataset:
        opts["reported_dataset"] = reported_dataset
    (dst / "board.yaml").write_text(yaml.safe_dump(opts, sort_keys=True))
    return dst


def _write_trimmed(df: Any, cells: list[dict[str, Any]], path: Path) -> None:
    """The stored ``per_image.csv.gz``: the identifying columns and the metrics' stored columns (fixed gzip
    header, so the same table gives the same bytes)."""
    keep = MetricIndex(cells, df.columns).stored_columns()
    cols = [c for c in df.columns if c in ID_COLUMNS or c in keep]
    data = df[cols].to_csv(index=False, lineterminator="\n", float_format="%.6g").encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(data)


def add_run(run_dir: str | Path, name: str, root: str | Path = ROOT) -> list[tuple[str, int, str]]:
    """Add the cells of the results directory ``run_dir`` to the stored result ``name``.

    For a board whose full run takes hours when one model is added (the reference board): the new cells are
    evaluated alone (same datasets, protocol and options) and merged here. A cell of the same (dataset, scale,
    method) and its per-image rows are replaced, its skip line is lifted; the stored cells are not touched.
    ``run.json`` keeps the original run and lists each added run (its command, commit, finish time and
    cells, and its run spec) under ``added_runs``; ``per_image_sha256`` becomes that of the merged table. Returns the added
    cells as (dataset, scale, method)."""
    import hashlib

    import pandas as pd

    from fsrbench.results import json_bytes, load_run, tidy_per_image

    src, dst = Path(run_dir), Path(root) / "results" / name
    new_doc, new_pi, _ = load_run(src)
    old_doc, old_pi, _ = load_run(dst)
    if (new_doc.get("protocol") or {}).get("sha256") != (old_doc.get("protocol") or {}).get("sha256"):
        raise ValueError(f"{src}: protocol {(new_doc.get('protocol') or {}).get('id')} differs from the stored "
                         f"result's {(old_doc.get('protocol') or {}).get('id')}; evaluate with the same protocol")
    old_sets = {c["dataset"] for c in old_doc["cells"]}
    strange = sorted({c["dataset"] for c in new_doc["cells"]} - old_sets)
    if strange:
        raise ValueError(f"{src}: dataset(s) {strange} are not in the stored result {dst} ({sorted(old_sets)})")
    key = lambda c: (c["dataset"], int(c["scale"]), c["method"])  # noqa: E731
    added = sorted(key(c) for c in new_doc["cells"])
    if not added:
        raise ValueError(f"{src}: no evaluated cells to add")
    replaced = set(added)
    cells = sorted([c for c in old_doc["cells"] if key(c) not in replaced] + new_doc["cells"], key=key)
    if old_pi is None or new_pi is None:
        raise ValueError(f"{dst if old_pi is None else src}: no per-image table")
    old_keys = zip(old_pi["dataset"], old_pi["scale"].astype(int), old_pi["method"])
    keep = pd.Series([k not in replaced for k in old_keys], index=old_pi.index, dtype=bool)
    extra = [c for c in new_pi.columns if c not in old_pi.columns]
    table = tidy_per_image(pd.concat([old_pi[keep], new_pi[[c for c in old_pi.columns if c in new_pi.columns] + extra]],
                                     ignore_index=True))
    doc = dict(old_doc)
    doc["cells"] = cells
    doc["skipped"] = [s for s in old_doc.get("skipped", []) if key(s) not in replaced]
    doc["per_image_sha256"] = hashlib.sha256(table.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
    _write_trimmed(table, cells, dst / "per_image.csv.gz")
    (dst / "metrics.json").write_bytes(json_bytes(doc))
    run = load_json(dst / "run.json") if (dst / "run.json").is_file() else {}
    new_run = load_json(src / "run.json") if (src / "run.json").is_file() else {}
    run.setdefault("added_runs", []).append({
        "cells": [list(k) for k in added],
        **{k: new_run.get(k) for k in ("command", "spec", "git_commit", "finished", "platform")},
    })
    (dst / "run.json").write_bytes(json_bytes(run))
    return added


def render_stored(result_dir: str | Path) -> str:
    d = Path(result_dir)
    opts = yaml.safe_load((d / "board.yaml").read_text()) if (d / "board.yaml").is_file() else {}
    return leaderboard(d, title=opts.get("title", d.name), compare_reported=bool(opts.get("compare_reported")),
                       reported_dataset=opts.get("reported_dataset"))


def regenerate(root: str | Path = ROOT, check: bool = False) -> list[str]:
    """Render every ``root/results/*`` board to ``root/<name>.md``; with ``check`` only report drift.

    Returns the list of problems (missing or drifted boards, with a unified diff); empty when all match."""
    root = Path(root)
    problems = []
    dirs = sorted(p for p in (root / "results").glob("*") if (p / "metrics.json").is_file())
    if not dirs:
        problems.append(f"no stored results under {root / 'results'}")
    for d in dirs:
        text = render_stored(d)
        out = root / f"{d.name}.md"
        if check:
            old = out.read_text() if out.is_file() else ""
            if old != text:
                diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(out), "regenerated", n=1))
                problems.append(f"{out} is out of date (run scripts/regenerate_leaderboards.py):\n{diff[:4000]}")
        else:
            out.write_text(text)
    return problems
