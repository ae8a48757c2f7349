"""Published ("reported") numbers of the method papers, loaded from ``leaderboards/reported/*.yaml``.

Each YAML file holds one paper's tables: source file, table number, caption, scale, protocol notes,
caveats and a CSV ``data`` block whose cells are the paper's printed text ("0.6290", "31.9", "-" for not
reported).  Values are *as reported*: never corrected; a suspected typo keeps the printed value and
carries a caveat.  :func:`load_reported` flattens everything into one row per (table, dataset, scale,
method, metric); :func:`reported_frame` gives the same rows as a pandas DataFrame.

The directory is ``<repo>/leaderboards/reported`` (override with ``$FSRBENCH_REPORTED_DIR`` or the
``directory`` argument).
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ID_FIELDS = ("dataset", "method", "scale", "train", "trained_scale")


@dataclass(frozen=True)
class ReportedValue:
    paper: str
    table_id: str
    table: str
    dataset: str
    scale: int | str | None
    method: str  # the paper's label
    fsrbench_method: str | None  # the fsrbench method name, when fsrbench implements it
    metric: str  # the paper column (fsrbench summary name where one exists)
    summary: str | None  # fsrbench summary name to compare with (None: no counterpart)
    value: float | None  # None when the paper prints "-"
    text: str  # the printed text
    higher_is_better: bool | None
    unit: str | None
    scale_to_fraction: float | None  # e.g. 0.01 for percentages vs fsrbench's fractions
    ablation: bool
    train: str | None
    source_file: str
    caveats: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["caveats"] = list(self.caveats)
        return d


def reported_dir(directory: str | Path | None = None) -> Path:
    if directory is not None:
        return Path(directory)
    env = os.environ.get("FSRBENCH_REPORTED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "leaderboards" / "reported"


def _num(text: str) -> float | None:
    t = text.strip()
    if t in ("", "-", "–"):
        return None
    return float(t)


def _scale(v: Any) -> int | str | None:
    if v is None or v == "" or v == "-":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def _caveats_for(caveats: list[dict[str, Any]], dataset: str, method: str, metric: str) -> tuple[str, ...]:
    out = []
    for c in caveats or []:
        if not any(k in c for k in ("dataset", "method", "metric")):
            continue  # table-wide caveats are in load_tables_meta()["caveats"]
        if c.get("dataset") not in (None, dataset):
            continue
        if c.get("method") not in (None, method):
            continue
        if c.get("metric") not in (None, metric):
            continue
        out.append(str(c["note"]))
    return tuple(out)


def load_file(path: str | Path) -> list[ReportedValue]:
    path = Path(path)
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "tables" not in doc:
        raise ValueError(f"{path}: not a reported-tables file (needs 'paper', 'metrics', 'tables')")
    paper = str(doc["paper"])
    metrics: dict[str, Any] = doc.get("metrics", {})
    out: list[ReportedValue] = []
    for t in doc["tables"]:
        ids = dict(doc.get("method_ids", {}))
        ids.update(t.get("method_ids", {}))
        rows = list(csv.DictReader(io.StringIO(t["data"])))
        if not rows:
            raise ValueError(f"{path}: table {t.get('id')} has no data rows")
        value_cols = [c for c in rows[0] if c not in ID_FIELDS]
        for c in value_cols:
            if c not in metrics:
                raise ValueError(f"{path}: table {t['id']} column {c!r} is not declared under 'metrics'")
        for r in rows:
            scale = _scale(r.get("scale", t.get("scale")))
            for c in value_cols:
                m = metrics[c]
                out.append(ReportedValue(
                    paper=paper, table_id=str(t["id"]), table=str(t["table"]), dataset=r["dataset"], scale=scale,
                    method=r["method"], fsrbench_method=ids.get(r["method"]), metric=c, summary=m.get("summary"),
                    value=_num(r[c]), text=r[c].strip(), higher_is_better=m.get("higher_is_better"),
                    unit=m.get("unit"), scale_to_fraction=m.get("scale_to_fraction"),
                    ablation=bool(t.get("ablation", False)), train=r.get("train"),
                    source_file=str(doc.get("source_file", "")),
                    caveats=_caveats_for(t.get("caveats", []), r["dataset"], r["method"], c)))
    return out


def load_tables_meta(directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """table id -> {paper, table, caption, scale, protocol, caveats (table-wide), cell_caveats, source_file}."""
    meta: dict[str, dict[str, Any]] = {}
    for path in sorted(reported_dir(directory).glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for t in doc["tables"]:
            meta[str(t["id"])] = {"paper": doc["paper"], "table": t["table"], "caption": t.get("caption", ""),
                                  "scale": t.get("scale"), "protocol": " ".join(str(doc.get("protocol", "")).split()),
                                  "caveats": [c["note"] for c in t.get("caveats", [])
                                              if not any(k in c for k in ("dataset", "method", "metric"))],
                                  "cell_caveats": [c["note"] for c in t.get("caveats", [])
                                                   if any(k in c for k in ("dataset", "method", "metric"))],
                                  "source_file": doc.get("source_file", ""), "file": path.name,
                                  "ablation": bool(t.get("ablation", False))}
    return meta


def load_reported(directory: str | Path | None = None) -> list[ReportedValue]:
    d = reported_dir(directory)
    files = sorted(d.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no reported tables (*.yaml) in {d}; set FSRBENCH_REPORTED_DIR to the "
                                f"leaderboards/reported folder of an fsrbench checkout")
    return [v for f in files for v in load_file(f)]


def reported_frame(directory: str | Path | None = None) -> Any:
    import pandas as pd

    return pd.DataFrame([v.as_dict() for v in load_reported(directory)])


def find(values: list[ReportedValue], *, paper: str | None = None, table: str | None = None,
         dataset: str | None = None, scale: int | str | None = None, method: str | None = None,
         metric: str | None = None) -> list[ReportedValue]:
    """Filter reported values; ``dataset`` matches case-insensitively, ``method`` matches the paper label
    or the fsrbench method name."""
    out = []
    for v in values:
        if paper is not None and v.paper != paper:
            continue
        if table is not None and table not in (v.table, v.table_id):
            continue
        if dataset is not None and v.dataset.lower() != dataset.lower():
            continue
        if scale is not None and v.scale != scale:
            continue
        if method is not None and method not in (v.method, v.fsrbench_method):
            continue
        if metric is not None and metric not in (v.metric, v.summary):
            continue
        out.append(v)
    return out
