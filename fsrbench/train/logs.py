"""Training logs written by rank 0: ``train_log.csv`` (loss rows), ``val_log.csv`` (validation rows) and
TensorBoard event files under ``tb/`` (when the ``tensorboard`` package is importable and enabled).

CSV files are rewritten atomically on resume so they hold exactly one row per logged step: rows after the
resumed checkpoint's step are dropped, and new columns (a loss term that appears later) extend the header.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping

from fsrbench.train.checkpoints import atomic_write_text


class CSVLog:
    """An append-only CSV keyed by ``step`` whose header grows with new keys."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["step"]
        if self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or ["step"])
                self.rows = [dict(r) for r in reader]

    def truncate_after(self, step: int) -> None:
        self.rows = [r for r in self.rows if int(float(r["step"])) <= step]
        self._rewrite()

    def append(self, row: Mapping[str, Any]) -> None:
        new_cols = [k for k in row if k not in self.columns]
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        if new_cols or not self.path.is_file():
            self.columns += new_cols
            self._rewrite()
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns).writerow(self.rows[-1])
            fh.flush()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r.get(k, "") for k in self.columns})
        atomic_write_text(self.path, buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return v


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


class TrainLogger:
    """CSV + TensorBoard sink.  Create only on rank 0."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        d = Path(run_dir)
        self.train = CSVLog(d / "train_log.csv")
        self.val = CSVLog(d / "val_log.csv")
        if resume_step is not None:
            self.train.truncate_after(resume_step)
            self.val.truncate_after(resume_step)
        else:
            self.train.truncate_after(-1)
            self.val.truncate_after(-1)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(d / "tb"), purge_step=(resume_step + 1) if resume_step is not None else None)
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.tb = None

    def log_train(self, step: int, values: Mapping[str, float]) -> None:
        self.train.append({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, step)

    def log_val(self, step: int, values: Mapping[str, float]) -> None:
        self.val.append({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"val/{k}", v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
