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
        keep = MetricIndex(cells, df.columns).stored_columns()
        cols = [c for c in df.columns if c in ID_COLUMNS or c in keep]
        data = df[cols].to_csv(index=False, lineterminator="\n", float_format="%.6g").encode()
        with open(dst / "per_image.csv.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                                          filename="") as fh:
            fh.write(data)
    opts: dict[str, Any] = {"title": title or name, "compare_reported": bool(compare_reported or reported_dataset)}
    if reported_dataset:
        opts["reported_dataset"] = reported_dataset
    (dst / "board.yaml").write_text(yaml.safe_dump(opts, sort_keys=True))
    return dst


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
