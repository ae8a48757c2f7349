"""Scoring one (dataset, scale, method) cell: inputs, inference, per-image metrics, summaries.

:class:`CellScorer` owns everything between "these image ids" and "these per-image rows": loading the HR images
(bad files become failed rows), the method's inputs (protocol LR, or the dataset's own LR, upsampling, test-time
priors — :class:`~fsrbench.eval.components.Components`), inference with output validation (shape, NaN/inf,
range) and uint8 quantisation, SR PNGs saved and reused, and the per-image metrics.  A failing batch is retried
image by image; a failing metric costs its columns, not the run.  The runner (:mod:`fsrbench.eval.runner`)
only decides which cells to score and writes what the scorer returns.

:meth:`CellScorer.per_image` (metrics of already-quantised SR/HR arrays) is the piece the training engine's
validation can share.
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import CellContext, Dataset, Method, Metric
from fsrbench.data.multires import MultiRes
from fsrbench.errors import DataError, MethodCrashed, MethodRaised, MethodTimeout
from fsrbench.eval.components import Components
from fsrbench.eval.isolate import IsolatedMethod, call_guarded, time_limit
from fsrbench.imageio import read_image, tensor_to_uint8, write_png
from fsrbench.results import slug

def _describe(exc: BaseException) -> str:
    """``Type: message`` of a method's failure (the harness's own wrappers already say what happened)."""
    if isinstance(exc, (MethodRaised, MethodCrashed)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def method_name(method: Any) -> str:
    return str(getattr(method, "name", "") or type(method).__name__)


# (image id, HR uint8 [H,W,3], per-image metadata; "_lr" holds a given LR image or None)
Item = tuple[str, np.ndarray, dict[str, Any]]


@dataclass
class Cell:
    """The cell being scored: ``method`` (set up) under ``method_name`` on ``dataset`` at ``scale``.

    ``srdir``: where SR PNGs are saved and reused on resume (None: they are neither saved nor reused)."""

    dataset: str
    scale: int
    method_name: str
    method: Method
    srdir: Path | None = None
    timed_out: str = ""  # set when a batch timed out: the method is not called again in this cell


@dataclass
class Scored:
    """Per-image rows of (part of) a cell, the failed images and notes (e.g. a metric that failed)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: "Scored") -> None:
        self.rows += other.rows
        self.failures += other.failures
        self.notes += other.notes


class CellScorer:
    """Scores cells with ``metrics`` (set up) using the shared ``components``.

    ``options`` are the metric options every :class:`~fsrbench.api.CellContext` carries (``--fer`` etc. and
    ``seed``)."""

    def __init__(self, components: Components, metrics: list[Metric], options: dict[str, Any] | None = None,
                 progress: bool = False) -> None:
        self.components = components
        self.metrics = list(metrics)
        self.options = dict(options or {})
        self.progress = progress
        self.columns = [c for m in self.metrics for c in m.column_names()]

    @property
    def protocol(self) -> Any:
        return self.components.protocol

    def context(self, dataset: str, scale: int, method: str, ids: list[str] | None = None,
                meta: list[dict[str, Any]] | None = None) -> CellContext:
        c = self.components
        return CellContext(dataset=dataset, scale=scale, method=method, protocol=c.protocol, device=c.device,
                           cache=c.cache, options=dict(self.options), meta=list(meta or []), ids=list(ids or []))

    # -- a whole cell ---------------------------------------------------------------------------------
    def score_cell(self, ds: Dataset, ids: list[str], cell: Cell, batch_size: int, rank: int = 0,
                   world: int = 1) -> Scored:
        """Rows of ``ids`` in batches of ``batch_size``; with ``world`` > 1 only the batches of ``rank`` (every
        ``world``-th batch: the batch composition of one process, so per-image values are identical)."""
        from tqdm.auto import tqdm

        out = Scored()
        hr_size = self.protocol.hr_size
        bar = tqdm(total=len(ids), desc=f"{cell.dataset} x{cell.scale} {cell.method_name}", unit="img", leave=False,
                   disable=not self.progress, file=sys.stderr)
        bs = max(1, int(batch_size))
        for b, start in enumerate(range(0, len(ids), bs)):
            chunk = ids[start:start + bs]
            if b % world != rank:
                continue  # another rank scores this batch (same batch composition as one process)
            good: list[Item] = []
            for sid in chunk:
                try:
                    smp = ds.load(sid)
                    if smp.hr.shape != (hr_size, hr_size, 3) or smp.hr.dtype != np.uint8:
                        raise DataError(f"{sid}: HR must be uint8 {hr_size}x{hr_size}x3, "
                                        f"got {smp.hr.dtype} {smp.hr.shape}")
                    good.append((sid, smp.hr, dict(smp.meta, _lr=self.given_lr(ds, sid, cell.scale, smp.meta))))
                except (DataError, OSError, ValueError) as exc:
                    out.failures.append({"image_id": sid, "reason": f"data: {exc}"})
                    out.rows.append(self.row(cell, sid, "failed", f"data: {exc}", "", {}))
            if good and cell.timed_out:
                why = f"method: not run: {cell.timed_out} on an earlier batch of this cell"
                for sid, _, _ in good:
                    out.failures.append({"image_id": sid, "reason": why})
                    out.rows.append(self.row(cell, sid, "failed", why, "", {}))
            elif good:
                out.extend(self.score_batch(cell, good))
            bar.update(len(chunk))
        bar.close()
        return out

    @staticmethod
    def given_lr(ds: Dataset, sid: str, scale: int, meta: dict[str, Any]) -> np.ndarray | None:
        """A dataset may ship its own LR images (e.g. DIC's released PNGs): use them instead of make_lr.
        A multi-resolution pair carries its LR (of its own size) in ``meta["lr"]``."""
        if isinstance(ds, MultiRes):
            return meta["lr"]
        fn = getattr(ds, "lr", None)
        return fn(sid, scale) if callable(fn) else None

    def row(self, cell: Cell, sid: str, status: str, error: str, note: str, values: dict[str, Any]) -> dict[str, Any]:
        row = {"dataset": cell.dataset, "scale": cell.scale, "method": cell.method_name, "image_id": sid,
               "status": status, "error": error, "note": note}
        for c in self.columns:
            row[c] = values.get(c, float("nan"))
        return row

    # -- one batch --------------------------------------------------------------------------------------
    def score_batch(self, cell: Cell, good: list[Item]) -> Scored:
        """Score one batch; a multi-resolution batch is scored per LR size (one tensor size per forward pass,
        metrics crop round(hr/s) pixels for every method)."""
        if not any("lr_size" in g[2] for g in good):
            return self.score_images(cell, good, cell.scale)
        out = Scored()
        for size in dict.fromkeys(int(g[2]["lr_size"]) for g in good):
            group = [g for g in good if int(g[2]["lr_size"]) == size]
            out.extend(self.score_images(cell, group, max(1, round(self.protocol.hr_size / size))))
        return out

    def infer(self, method: Method, sids: list[str], hr: np.ndarray, scale: int,
              given_lr: list[np.ndarray | None] | None = None) -> tuple[np.ndarray, list[str]]:
        """Run the method on one batch; returns uint8 SR [B,H,W,3] and a note per image. Raises on failure."""
        import torch

        batch = self.components.batch(method, sids, hr, scale, given_lr)
        if isinstance(method, IsolatedMethod):  # its worker applies autocast and the time limit
            out = method.super_resolve(batch)
        else:
            with self.components.autocast(), time_limit(self.components.batch_timeout, method_name(method)):
                out = call_guarded(method.super_resolve, batch)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"super_resolve returned {type(out).__name__}, expected a torch.Tensor")
        want = (len(sids), 3, self.protocol.hr_size, self.protocol.hr_size)
        if tuple(out.shape) != want:
            raise ValueError(f"super_resolve returned shape {tuple(out.shape)}, expected {want}")
        out = out.detach().float().cpu()
        notes = []
        flat = out.reshape(len(sids), -1)
        bad = (~torch.isfinite(flat).all(dim=1)).tolist()
        lows, highs = flat.amin(dim=1).tolist(), flat.amax(dim=1).tolist()  # one pass each, not 2 per image
        for i in range(len(sids)):
            lo, hi = lows[i], highs[i]
            if bad[i]:
                notes.append("NaN/inf")
            elif lo < -1e-3 or hi > 1 + 1e-3:
                notes.append(f"output outside [0,1] (min {lo:.3g}, max {hi:.3g}) clipped")
            else:
                notes.append("")
        return tensor_to_uint8(torch.nan_to_num(out), self.protocol.quantize), notes

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> tuple[list[dict[str, Any]], list[str]]:
        """Every metric's per-image values of uint8 ``sr``/``hr`` [B,H,W,3]: ({column: value} per image, notes).
        A metric that raises is left out (its columns stay NaN) with a note naming it."""
        values: list[dict[str, Any]] = [{} for _ in range(len(sr))]
        notes: list[str] = []
        for m in self.metrics:
            try:
                cols = call_guarded(m.per_image, sr, hr, ctx)
            except Exception as exc:  # noqa: BLE001 - a failing metric costs its columns, not the run
                notes.append(f"{m.name}: {type(exc).__name__}: {exc}")
                if os.environ.get("FSRBENCH_DEBUG"):
                    traceback.print_exc()
                continue
            for c, arr in cols.items():
                for j in range(len(sr)):
                    values[j][c] = arr[j]
        return values, notes

    def score_images(self, cell: Cell, good: list[Item], metric_scale: int) -> Scored:
        """SR (reused from ``cell.srdir`` or inferred; a failing batch is retried image by image) and the
        per-image metrics of the images ``good`` (metrics see ``metric_scale``)."""
        out = Scored()
        sids = [g[0] for g in good]
        hr = np.stack([g[1] for g in good])
        given = [g[2].pop("_lr", None) for g in good]
        sr = np.zeros_like(hr)
        notes = [""] * len(sids)
        errors = [""] * len(sids)
        todo = []
        for i, sid in enumerate(sids):
            p = cell.srdir / f"{slug(sid)}.png" if cell.srdir is not None else None
            if p is not None and p.is_file():
                try:
                    sr[i] = read_image(p)
                    continue
                except DataError:
                    pass
            todo.append(i)
        if todo:
            try:
                res, n = self.infer(cell.method, [sids[i] for i in todo], hr[todo], cell.scale, [given[i] for i in todo])
                for j, i in enumerate(todo):
                    sr[i], notes[i] = res[j], n[j]
            except MethodTimeout as exc:  # no retry image by image: each would wait as long again
                cell.timed_out = "the method timed out"
                for i in todo:
                    errors[i] = f"method: {exc}"
            except Exception:  # noqa: BLE001 - isolate the failing image(s) one by one
                for i in todo:
                    if cell.timed_out:
                        errors[i] = f"method: not run: {cell.timed_out} on another image of this batch"
                        continue
                    try:
                        res, n = self.infer(cell.method, [sids[i]], hr[i:i + 1], cell.scale, [given[i]])
                        sr[i], notes[i] = res[0], n[0]
                    except MethodTimeout as exc:
                        cell.timed_out = "the method timed out"
                        errors[i] = f"method: {exc}"
                    except Exception as exc:  # noqa: BLE001
                        errors[i] = f"method: {_describe(exc)}"
            for i in todo:
                if notes[i] == "NaN/inf":
                    errors[i], notes[i] = "method: output contains NaN or inf", ""
            if cell.srdir is not None:
                for i in todo:
                    if not errors[i]:
                        # no fsync: a torn PNG after an OS crash fails to decode and is inferred again
                        write_png(cell.srdir / f"{slug(sids[i])}.png", sr[i], fsync=False)
        ok = [i for i in range(len(sids)) if not errors[i]]
        values: list[dict[str, Any]] = [{} for _ in sids]
        if ok:
            ctx = self.context(cell.dataset, metric_scale, cell.method_name, ids=[sids[i] for i in ok],
                               meta=[good[i][2] for i in ok])
            vals, metric_notes = self.per_image(sr[ok], hr[ok], ctx)
            out.notes += metric_notes
            for j, i in enumerate(ok):
                values[i] = vals[j]
        for i, sid in enumerate(sids):
            if errors[i]:
                out.failures.append({"image_id": sid, "reason": errors[i]})
                out.rows.append(self.row(cell, sid, "failed", errors[i], notes[i], {}))
            else:
                out.rows.append(self.row(cell, sid, "ok", "", notes[i], values[i]))
        return out

    # -- dataset-level numbers ----------------------------------------------------------------------------
    def summarize(self, ok: Any, cell: Cell) -> tuple[dict[str, Any], list[str]]:
        """Every metric's summaries of the cell's table of ok rows: ({summary key: value dict}, notes).
        Each value dict carries ``higher_is_better`` and ``metric`` (the metric's name)."""
        ctx = self.context(cell.dataset, cell.scale, cell.method_name)
        summaries: dict[str, Any] = {}
        notes: list[str] = []
        for m in self.metrics:
            try:
                s = call_guarded(m.summarize, ok, ctx)
            except Exception as exc:  # noqa: BLE001
                notes.append(f"{m.name}: summary failed: {type(exc).__name__}: {exc}")
                continue
            for k, v in s.items():
                v = dict(v)
                v.setdefault("higher_is_better", m.higher_is_better)
                v.setdefault("metric", m.name)
                summaries[k] = v
        return summaries, notes
