"""Leaderboards rendered from a results directory's ``metrics.json`` (+ ``per_image.csv``, ``profile.json``).

One board per (dataset, scale).  The main table has a row per method: mean rank across the headline
summaries (HELM-style, each ranked in its own direction), every headline summary with its direction
arrow (↑ higher is better, ↓ lower is better), value ± 95% CI half-width, the best value in **bold**, a ``†``
where the method is significantly worse than the best (paired test on the same images, see
:func:`significance`), the method's cost (parameters, GMACs at 128x128 output, latency, peak memory —
from ``profile.json``, see :mod:`fsrbench.report.profile`), N and the failure count (last column).  A second
table holds every other summary number; then the face-model ids, notes and the methods that could not run.
Rows are ordered by mean rank (reference rows last); a cell evaluated on fewer images than its split holds is
marked partial (``N of M*`` and a warning), a method whose weights were trained on test images is marked ``§``,
and "reported vs reproduced" marks every value that cannot stand beside a paper's
(:mod:`fsrbench.report.comparability`).

The boards ask the metrics (:class:`fsrbench.report.metric_index.MetricIndex`): the headline summaries are
the metrics' ``primary_keys()`` (ordered by ``board_order``), the significance marks are their
``compare()``, the per-LR-size columns come from their ``summary_column_map()``; no metric is named here.

Multi-resolution runs (``fsrbench run --multires MR8``, docs/multires.md) get one board per dataset instead:
every method and model scale in one table over all (image, LR size) pairs (a fixed-scale method appears once
per model, e.g. ``edsr (x8 model)``), followed by one table per headline metric with a column per LR size
(:func:`merge_multires`, :func:`multires_tables`).

Inputs: ``metrics.json`` (required), ``per_image.csv`` (for the significance marks; without it no marks),
``profile.json`` (optional).  Formats: markdown (:func:`render_markdown`), CSV (:func:`render_csv`, one row
per method x summary), LaTeX (:func:`render_latex`); :func:`render_compare_reported` puts the papers'
published numbers (``leaderboards/reported``) beside the reproduced ones.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from fsrbench.report.comparability import (CellFlags, board_warnings, cell_flags, method_label, n_text,
                                           order_methods, weights_notes)
from fsrbench.report.fer_card import card_lines, ecm_lines, ecm_paired, fer_card
from fsrbench.report.metric_index import MetricIndex
from fsrbench.results import load_json, load_run  # noqa: F401 - load_run: the old import path

# The summaries of the main table and of the mean rank are the metrics' primary keys (Metric.primary: one or
# two per metric family, so five identity thresholds do not outweigh PSNR); every other summary goes to the
# second table.
# [CHOICE] leaderboard.reference_methods: rows shown but never best, ranked or tested (sanity references).
REFERENCE_METHODS = {"hr-oracle"}
# [CHOICE] leaderboard.alpha / n_boot / seed: two-sided 95% paired-bootstrap CI of the difference to the
# best; "significantly worse" = the CI excludes 0.  No multiplicity correction (one test per cell).
ALPHA = 0.05
N_BOOT = 1000
SEED = 0
MODEL_KEYS = ("fer_model", "au_estimator", "model", "landmarks", "landmark_model", "identity_model", "net",
              "definition", "reference")


# ------------------------------------------------------------------------------------------------
# number formatting
# ------------------------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, bool):
        return None
    return float(v) if isinstance(v, (int, float, np.floating, np.integer)) else None


def _fmt(v: Any, ref: float | None = None) -> str:
    """2 decimals for values beyond ±1 (PSNR, ECM), 4 below (SSIM, LPIPS); ``ref`` picks the precision."""
    x = _num(v)
    if x is None:
        return "–" if v is None else str(v)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    r = abs(ref if ref is not None and math.isfinite(ref) else x)
    return f"{x:.2f}" if r > 1 else f"{x:.4f}"


def _fmt_count(v: Any) -> str:
    x = _num(v)
    if x is None or math.isnan(x):
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{int(x)}"


def _fmt_plain(v: Any, digits: int) -> str:
    x = _num(v)
    if x is None or math.isnan(x):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_sig(v: Any, digits: int) -> str:
    x = _num(v)
    if x is None or math.isnan(x):
        return "–"
    return f"{x:.{digits}g}"


def half_width(s: dict[str, Any]) -> float | None:
    v, lo, hi = _num(s.get("value")), _num(s.get("ci_low")), _num(s.get("ci_high"))
    if v is None or lo is None or hi is None or not all(map(math.isfinite, (v, lo, hi))) or hi <= lo:
        return None
    return (hi - lo) / 2


# ------------------------------------------------------------------------------------------------
# the board model
# ------------------------------------------------------------------------------------------------
@dataclass
class Board:
    """One (dataset, scale) table in a renderer-neutral form."""

    dataset: str
    scale: int
    n: int
    methods: list[str]
    headline: list[str]
    extra: list[str]
    cells: dict[tuple[str, str], dict[str, Any]]
    direction: dict[str, bool]
    best: dict[str, float]
    sig: dict[tuple[str, str], dict[str, Any]]  # (method, key) -> paired comparison vs the best
    ranks: dict[str, float]
    cost: dict[str, dict[str, Any]]
    n_images: dict[str, int]
    n_failed: dict[str, int]
    notes: list[str]
    skipped: list[dict[str, Any]]
    models: dict[str, list[str]] = field(default_factory=dict)
    not_comparable: list[str] = field(default_factory=list)
    fer: dict[str, Any] | None = None  # FER card (fsrbench.report.fer_card)
    flags: dict[str, CellFlags] = field(default_factory=dict)  # partial cells, weights' provenance (comparability)
    ecm_paired: dict[str, Any] | None = None  # ECM paired against a reference method (ranks ECM)
    columns: dict[str, str] = field(default_factory=dict)  # summary key -> per-image column (mean-type keys)
    multires: dict[str, Any] | None = None  # multi-resolution board: set, LR sizes, per-size means (merge_multires)

    def is_best(self, method: str, key: str) -> bool:
        s = self.cells.get((method, key))
        if s is None or method in REFERENCE_METHODS or key not in self.best:
            return False
        v = _num(s.get("value"))
        return v is not None and v == self.best[key]

    def worse(self, method: str, key: str) -> bool:
        return bool(self.sig.get((method, key), {}).get("significant"))


def _finite_values(rows: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    out = []
    for c in rows:
        if c["method"] in REFERENCE_METHODS:
            continue
        s = c.get("metrics", {}).get(key)
        v = _num(s.get("value")) if s else None
        if v is not None and math.isfinite(v):
            out.append((c["method"], v))
    return out


def mean_ranks(values: dict[str, list[tuple[str, float]]], direction: dict[str, bool]) -> dict[str, float]:
    """HELM-style mean rank: per metric, rank the methods (1 = best in that metric's direction, ties share
    the average rank); a method's score is the mean of its ranks over the metrics it has a value for.
    Metrics with fewer than two methods are left out."""
    from scipy.stats import rankdata

    acc: dict[str, list[float]] = {}
    for key, vals in values.items():
        if len(vals) < 2:
            continue
        x = np.array([v for _, v in vals])
        r = rankdata(-x if direction.get(key, True) else x, method="average")
        for (m, _), rk in zip(vals, r):
            acc.setdefault(m, []).append(float(rk))
    return {m: float(np.mean(v)) for m, v in acc.items()}


def _cell_table(per_image: Any, dataset: str, scale: int, method: str) -> Any:
    t = per_image[(per_image["dataset"] == dataset) & (per_image["scale"] == scale) & (per_image["method"] == method)]
    if "status" in t:
        t = t[t["status"] == "ok"]
    return t.set_index("image_id")


def significance(per_image: Any, dataset: str, scale: int, key: str, method: str, best: str,
                 n_boot: int = N_BOOT, seed: int = SEED, alpha: float = ALPHA,
                 metrics: MetricIndex | None = None) -> dict[str, Any] | None:
    """Paired comparison of ``method`` against ``best`` for summary ``key`` on the images both scored.

    The test is the owning metric's :meth:`fsrbench.api.Metric.compare` (``metrics``: the board's
    :class:`MetricIndex`; without it, the registered metric that declares ``key``): a paired bootstrap of the
    mean difference for mean-type summaries, of the set statistic for set-level ones (ECM, AU F1).
    ``significant`` is True when the (1-alpha) paired-bootstrap CI of method - best excludes 0.
    Returns None when the per-image data for ``key`` is not available."""
    if metrics is None:
        metrics = MetricIndex.for_key(key, per_image.columns)
    return _paired(_cell_table(per_image, dataset, scale, method), _cell_table(per_image, dataset, scale, best),
                   key, best, metrics, n_boot, seed, alpha)


def _paired(a: Any, b: Any, key: str, best: str, metrics: MetricIndex, n_boot: int, seed: int,
            alpha: float) -> dict[str, Any] | None:
    """:func:`significance` of two cell tables (indexed by image id)."""
    common = a.index.intersection(b.index)
    a, b = a.loc[common].reset_index(), b.loc[common].reset_index()
    res = metrics.compare(key, a, b, n_boot=n_boot, seed=seed, confidence=1 - alpha)
    if res is None:
        return None
    lo, hi = _num(res.get("ci_low")), _num(res.get("ci_high"))
    res["significant"] = bool(lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
                              and (lo > 0 or hi < 0))
    res["versus"] = best
    res["test"] = ("paired bootstrap of the mean difference" if metrics.column(key) is not None
                   else "paired bootstrap of the set statistic")
    return res


def _models(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for c in rows:
        for key, s in c.get("metrics", {}).items():
            fam = str(s.get("metric", key))
            for k in MODEL_KEYS:
                v = s.get(k)
                if isinstance(v, str) and v:
                    out.setdefault(fam, set()).add(f"{k}: {v}")
    return {k: sorted(v) for k, v in sorted(out.items())}


def _params(c: dict[str, Any]) -> Any:
    info = c.get("method_info") or {}
    for k in ("params", "parameters"):
        if isinstance(info.get(k), (int, float)) and not isinstance(info.get(k), bool):
            return info[k]
    return None


def build_boards(metrics_doc: dict[str, Any], per_image: Any = None, profile: dict[str, Any] | None = None,
                 headline: list[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED,
                 alpha: float = ALPHA, ecm_reference: str | None = None) -> list[Board]:
    """The boards of a results document (multi-resolution datasets merged, :func:`merge_multires`).

    ``headline`` overrides the metrics' primary keys as the main-table summaries; ``per_image`` (None: no
    significance marks) feeds the metrics' paired comparisons; ``ecm_reference``: see
    :func:`fsrbench.report.fer_card.ecm_paired`."""
    metrics_doc, per_image = merge_multires(metrics_doc, per_image)
    cells = metrics_doc.get("cells", [])
    multires = metrics_doc.get("multires", {})
    index = MetricIndex(cells, per_image.columns if per_image is not None else ())
    skipped = metrics_doc.get("skipped", [])
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], int(c["scale"])), []).append(c)
    for s in skipped:
        groups.setdefault((s["dataset"], int(s["scale"])), [])
    prof: dict[tuple[str, int], dict[str, Any]] = {}
    for e in (profile or {}).get("entries", []):
        prof[(e["method"], int(e["scale"]))] = e
    boards = []
    for (dataset, scale) in sorted(groups):
        rows = sorted(groups[(dataset, scale)], key=lambda c: c["method"])
        keys = {k for c in rows for k in c.get("metrics", {})}
        head = [k for k in headline if k in keys] if headline is not None else index.headline(keys)
        extra = sorted(k for k in keys if k not in head)
        direction: dict[str, bool] = {}
        for k in keys:
            direction[k] = bool(next((c["metrics"][k].get("higher_is_better", True) for c in rows
                                      if k in c.get("metrics", {})), True))
        best: dict[str, float] = {}
        best_method: dict[str, str] = {}
        for k in keys:
            vals = _finite_values(rows, k)
            if len(vals) >= 2:
                pick = (max if direction[k] else min)(vals, key=lambda t: t[1])
                best[k], best_method[k] = pick[1], pick[0]
        sig: dict[tuple[str, str], dict[str, Any]] = {}
        if per_image is not None and len(per_image):
            tables: dict[str, Any] = {}

            def table(m: str) -> Any:
                if m not in tables:
                    tables[m] = _cell_table(per_image, dataset, scale, m)
                return tables[m]

            for k in head:
                if k not in best_method:
                    continue
                for c in rows:
                    m = c["method"]
                    if m in REFERENCE_METHODS or m == best_method[k] or k not in c.get("metrics", {}):
                        continue
                    res = _paired(table(m), table(best_method[k]), k, best_method[k], index, n_boot, seed, alpha)
                    if res is not None:
                        sig[(m, k)] = res
        ecm_info = (ecm_paired(rows, per_image, dataset, scale, ecm_reference, n_boot, seed, REFERENCE_METHODS)
                    if "ecm" in head else None)
        rank_values = {k: _finite_values(rows, k) for k in head}
        if ecm_info is not None:  # ECM is ranked by its paired difference against the reference
            eff = dict({m: r["effect"] for m, r in ecm_info["rows"].items()}, **{ecm_info["reference"]: 0.0})
            if all(m in eff and math.isfinite(eff[m]) for m, _ in rank_values["ecm"]):
                rank_values["ecm"] = [(m, eff[m]) for m, _ in rank_values["ecm"]]
        ranks = mean_ranks(rank_values, direction)
        cost: dict[str, dict[str, Any]] = {}
        for c in rows:
            e = dict(prof.get((c["method"], scale), {}))
            if e.get("params") is None:
                e["params"] = _params(c)
            cost[c["method"]] = e
        notes = sorted({f"{c['method']}: {nt}" for c in rows for nt in c.get("notes", [])}
                       | {f"{c['method']}: SR inference under autocast {c['amp']} (not float32)"
                          for c in rows if c.get("amp")})
        nc = sorted({str(s.get("metric", k)) for c in rows for k, s in c.get("metrics", {}).items()
                     if s.get("comparable_with_paper") is False})
        boards.append(Board(
            dataset=dataset, scale=scale, n=max((int(c.get("n_images", 0)) for c in rows), default=0),
            methods=order_methods([c["method"] for c in rows], ranks, REFERENCE_METHODS), headline=head, extra=extra,
            cells={(c["method"], k): s for c in rows for k, s in c.get("metrics", {}).items()},
            direction=direction, best=best, sig=sig, ranks=ranks, cost=cost,
            n_images={c["method"]: int(c.get("n_images", 0)) for c in rows},
            n_failed={c["method"]: int(c.get("n_failed", 0)) for c in rows}, notes=notes,
            skipped=sorted([s for s in skipped if s["dataset"] == dataset and int(s["scale"]) == scale],
                           key=lambda s: s["method"]),
            models=_models(rows), not_comparable=nc, fer=fer_card(rows, per_image, dataset), ecm_paired=ecm_info,
            columns={k: col for k in sorted(keys) if (col := index.column(k)) is not None},
            multires=multires.get(dataset) if scale == 0 else None, flags={c["method"]: cell_flags(c) for c in rows}))
    return boards


# ------------------------------------------------------------------------------------------------
# multi-resolution runs
# ------------------------------------------------------------------------------------------------
def multires_label(method: str, scale: int) -> str:
    """Row label of a multi-resolution cell: the method, plus its model scale for fixed-scale methods."""
    return f"{method} (x{int(scale)} model)" if int(scale) else method


def merge_multires(doc: dict[str, Any], per_image: Any = None) -> tuple[dict[str, Any], Any]:
    """Put every cell of a multi-resolution dataset on one board (scale 0), methods relabelled with their model
    scale; ``doc["multires"][dataset]`` keeps the set, the LR sizes and each row's per-size means.
    Merging a merged document changes nothing (:func:`build_boards` merges, so callers need not)."""
    mr = {c["dataset"]: c["multires"] for c in doc.get("cells", []) if c.get("multires")}
    if not mr:
        return doc, per_image
    cells, info = [], {}
    for c in doc.get("cells", []):
        if c["dataset"] in mr:
            label = multires_label(c["method"], c["scale"])
            d = info.setdefault(c["dataset"], {"set": mr[c["dataset"]]["set"],
                                               "lr_sizes": list(mr[c["dataset"]]["lr_sizes"]), "rows": {}})
            d["rows"][label] = c.get("by_lr_size", {})
            c = dict(c, method=label, scale=0)
        cells.append(c)
    skipped = [dict(s, method=multires_label(s["method"], s["scale"]), scale=0) if s["dataset"] in mr else s
               for s in doc.get("skipped", [])]
    doc = dict(doc, cells=cells, skipped=skipped, multires=info)
    if per_image is not None and len(per_image):
        per_image = per_image.copy()
        sel = per_image["dataset"].isin(list(mr))
        if sel.any():
            per_image.loc[sel, "method"] = [multires_label(m, s) for m, s in
                                            zip(per_image.loc[sel, "method"], per_image.loc[sel, "scale"])]
            per_image.loc[sel, "scale"] = 0
    return doc, per_image


def multires_tables(board: Board, info: dict[str, Any]) -> list[str]:
    """Markdown: one table per headline metric, a row per method, a column per LR size (+ all pairs)."""
    sizes = sorted(int(s) for s in info["lr_sizes"])
    lines: list[str] = []
    for key in board.headline:
        col = board.columns.get(key, key)
        table = {m: info["rows"].get(m, {}) for m in board.methods}
        if not any(col in r.get(str(s), {}) for r in table.values() for s in sizes):
            continue
        hib = board.direction.get(key, True)
        best = {}
        for s in sizes:
            vals = [r[str(s)][col] for m, r in table.items() if m not in REFERENCE_METHODS
                    and col in r.get(str(s), {}) and math.isfinite(r[str(s)][col])]
            if len(vals) >= 2:
                best[s] = max(vals) if hib else min(vals)
        finite = [abs(v) for r in table.values() for s in sizes
                  if isinstance(v := r.get(str(s), {}).get(col), (int, float)) and math.isfinite(v)]
        digits = 2 if finite and max(finite) > 1 else 4  # the main table's rule (_fmt): 2 beyond ±1, else 4
        rows = []
        for m in board.methods:
            r = table[m]
            out = [m]
            for s in sizes:
                v = r.get(str(s), {}).get(col)
                txt = "—" if v is None else f"{v:.{digits}f}"
                out.append(f"**{txt}**" if v is not None and best.get(s) == v else txt)
            out.append(cell_text(board, m, key))
            rows.append(out)
        head = [f"{key} {'↑' if hib else '↓'} by LR size"] + [f"{s}²" for s in sizes] + ["all pairs"]
        lines += [tabulate(rows, headers=head, tablefmt="github", disable_numparse=True), ""]
    return lines


# ------------------------------------------------------------------------------------------------
# renderers
# ------------------------------------------------------------------------------------------------
def cell_text(board: Board, method: str, key: str, markup: str = "md") -> str:
    s = board.cells.get((method, key))
    if s is None:
        return "–"
    v = _num(s.get("value"))
    txt = _fmt(s.get("value"))
    hw = half_width(s)
    if hw is not None:
        txt += (" $\\pm$ " if markup == "latex" else " ± ") + _fmt(hw, ref=v)
    miss = s.get("n_missing", 0) or 0
    if miss:
        txt += f" ({miss} n/a)"
    n_inf = s.get("n_inf", 0) or 0
    if n_inf and v is not None and math.isfinite(v):  # infinite per-image values left out of the mean
        txt += f" ({n_inf} ∞)" if markup != "latex" else f" ({n_inf} $\\infty$)"
    if board.worse(method, key):
        txt += "$^\\dagger$" if markup == "latex" else " †"
    if board.is_best(method, key):
        if markup == "latex":
            return f"\\textbf{{{txt}}}"
        return f"**{txt}**" if markup in ("md", "html") else txt
    return txt


def _arrow(board: Board, key: str, markup: str = "md") -> str:
    up = board.direction.get(key, True)
    if markup == "latex":
        return "$\\uparrow$" if up else "$\\downarrow$"
    return "↑" if up else "↓"


def _has_cost(board: Board, name: str) -> bool:
    return any(board.cost.get(m, {}).get(name) is not None for m in board.methods)


COST_COLUMNS = [("params", "params", _fmt_count), ("gmacs", "GMACs@128²", lambda v: _fmt_plain(v, 3)),
                ("latency_ms", "latency ms", lambda v: _fmt_sig(v, 3)),
                ("peak_mem_mb", "peak mem MB", lambda v: _fmt_plain(v, 1))]


def main_table(board: Board, markup: str = "md") -> tuple[list[str], list[list[str]]]:
    header = ["method"]
    if board.ranks:
        header.append("mean rank ↓" if markup != "latex" else "rank $\\downarrow$")
    header += [f"{k} {_arrow(board, k, markup)}" for k in board.headline]
    costs = [(n, label, f) for n, label, f in COST_COLUMNS if _has_cost(board, n)]
    header += [label for _, label, _ in costs]
    header += ["N", "failed"]
    rows = []
    for m in board.methods:
        r = [method_label(m, board.flags.get(m))]
        if board.ranks:
            r.append(_fmt_plain(board.ranks.get(m), 2))
        r += [cell_text(board, m, k, markup) for k in board.headline]
        r += [f(board.cost.get(m, {}).get(n)) for n, _, f in costs]
        r += [n_text(board.flags.get(m), board.n_images.get(m, "")), str(board.n_failed.get(m, 0))]
        rows.append(r)
    return header, rows


def extra_table(board: Board, markup: str = "md") -> tuple[list[str], list[list[str]]]:
    header = ["method"] + [f"{k} {_arrow(board, k, markup)}" for k in board.extra]
    rows = [[m] + [cell_text(board, m, k, markup) for k in board.extra] for m in board.methods]
    return header, rows


def _preamble(metrics_doc: dict[str, Any], title: str | None, profile: dict[str, Any] | None) -> list[str]:
    proto = metrics_doc.get("protocol", {})
    lines = [f"# {title or 'fsrbench leaderboard'}", "",
             f"Protocol `{proto.get('id', '?')}` v{proto.get('version', '?')} (sha256 `{str(proto.get('sha256', ''))[:12]}`). "
             "Values: mean ± 95% CI half-width; ↑ higher is better, ↓ lower is better; best in bold (reference rows "
             f"such as hr-oracle excluded); † = significantly worse than the best (paired bootstrap on the same "
             f"images, {int((1 - ALPHA) * 100)}% CI of the difference excludes 0). Mean rank: average over the "
             "headline metrics of the method's rank (1 = best). "
             "Generated by `fsrbench leaderboard` from metrics.json — do not edit by hand.", ""]
    if profile:
        lines += [f"Cost: parameters; GMACs of one forward pass at 128×128 output (Conv/ConvTranspose/Linear "
                  f"multiply-accumulates); latency and peak memory on {profile.get('device', '?')} "
                  f"(batch {profile.get('batch_size', 1)}, {profile.get('warmup', '?')} warm-up + "
                  f"{profile.get('repeats', '?')} timed runs, median) — from profile.json, not deterministic.", ""]
    return lines


def render_boards_markdown(boards: list[Board], metrics_doc: dict[str, Any], title: str | None = None,
                           profile: dict[str, Any] | None = None) -> str:
    lines = _preamble(metrics_doc, title, profile)
    for b in boards:
        mr = b.multires
        if mr:
            sizes = ", ".join(str(s) for s in mr["lr_sizes"])
            lines += [f"## {b.dataset} — every LR size of {mr['set']} ({sizes}) (N = {b.n} pairs)", "",
                      "Any-scale methods see each LR at its own size; a fixed-scale method's model is fed the LR "
                      "bicubic-resized to its input size, or upsampled to 128² for methods on upsampled input "
                      "(UFVNet Tables I–II). PSNR/SSIM crop round(128/s) pixels per side for every method.", ""]
        else:
            lines += [f"## {b.dataset} — x{b.scale} (N = {b.n})", ""]
        warn = board_warnings(b.methods, b.flags)
        if warn:
            lines += [*warn, ""]
        if b.methods:
            h, rows = main_table(b)
            lines += [tabulate(rows, headers=h, tablefmt="github", disable_numparse=True), ""]
            if mr:
                lines += multires_tables(b, mr)
            if b.extra:
                h, rows = extra_table(b)
                lines += ["All other summaries:", "", tabulate(rows, headers=h, tablefmt="github", disable_numparse=True), ""]
            if b.models:
                lines += ["Face models:", *[f"- {fam}: " + "; ".join(v) for fam, v in b.models.items()], ""]
            lines += ecm_lines(b.ecm_paired, {m: _num(b.cells[(m, "ecm")].get("value")) for m in b.methods
                                              if (m, "ecm") in b.cells}) + card_lines(b.fer)
            if b.not_comparable:
                lines += [f"Not comparable with the papers' numbers (other analysis models): {', '.join(b.not_comparable)}.", ""]
            wn = weights_notes(b.methods, b.flags)
            if wn:
                lines += ["Weights not comparable with the papers' numbers:", *[f"- {x}" for x in wn], ""]
            if b.notes:
                lines += ["Notes:", *[f"- {nt}" for nt in b.notes], ""]
        if b.skipped:
            lines += ["Not evaluated:", *[f"- {s['method']}: {s['reason']}" for s in b.skipped], ""]
    ms = metrics_doc.get("skipped_metrics", [])
    if ms:
        lines += ["Metrics not computed:", *[f"- {m['metric']}: {m['reason']}" for m in ms], ""]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(metrics_doc: dict[str, Any], title: str | None = None, per_image: Any = None,
                    profile: dict[str, Any] | None = None) -> str:
    boards = build_boards(metrics_doc, per_image, profile)
    return render_boards_markdown(boards, metrics_doc, title, profile)


def render_csv(boards: list[Board]) -> str:
    """Long format: one row per (dataset, scale, method, summary) with CI, direction, best, significance, rank, cost."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "scale", "method", "summary", "value", "ci_low", "ci_high", "n", "n_missing",
                "higher_is_better", "headline", "best", "worse_than_best", "p_vs_best", "diff_vs_best", "mean_rank",
                "params", "gmacs", "latency_ms", "peak_mem_mb", "n_images", "n_failed", "n_split", "partial",
                "weights_comparable", "trained_on_test"])
    for b in boards:
        for m in b.methods:
            cost = b.cost.get(m, {})
            fl = b.flags.get(m)
            for k in b.headline + b.extra:
                s = b.cells.get((m, k))
                if s is None:
                    continue
                sg = b.sig.get((m, k), {})
                w.writerow([b.dataset, b.scale, m, k, s.get("value"), s.get("ci_low"), s.get("ci_high"), s.get("n"),
                            s.get("n_missing"), b.direction.get(k), k in b.headline, b.is_best(m, k),
                            sg.get("significant", ""), sg.get("p_bootstrap", ""), sg.get("effect", ""),
                            b.ranks.get(m, ""), cost.get("params", ""), cost.get("gmacs", ""),
                            cost.get("latency_ms", ""), cost.get("peak_mem_mb", ""), b.n_images.get(m),
                            b.n_failed.get(m), "" if fl is None or fl.n_split is None else fl.n_split,
                            "" if fl is None else fl.partial, "" if fl is None else fl.weights_comparable,
                            "" if fl is None else fl.test_split])
    return buf.getvalue()


def _latex_escape(s: str) -> str:
    """Escape the text outside $...$ math segments and \\textbf{...} wrappers; map unicode symbols to math."""
    sym = {"∞": "$\\infty$", "-∞": "$-\\infty$", "²": "$^2$", "↓": "$\\downarrow$", "↑": "$\\uparrow$", "–": "--",
           "±": "$\\pm$", "†": "$^\\dagger$", "×": "$\\times$", "§": "\\S{}"}
    parts = re.split(r"(\$[^$]*\$|\\textbf\{|\})", s)
    out = []
    for part in parts:
        if part.startswith("$") or part in ("\\textbf{", "}"):
            out.append(part)
            continue
        for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#")):
            part = part.replace(a, b)
        for a in sorted(sym, key=len, reverse=True):
            part = part.replace(a, sym[a])
        out.append(part)
    return "".join(out)


def render_latex(boards: list[Board], metrics_doc: dict[str, Any]) -> str:
    proto = metrics_doc.get("protocol", {})
    out = [f"% generated by `fsrbench leaderboard --format latex` (protocol {proto.get('id', '?')}); needs booktabs"]
    for b in boards:
        if not b.methods:
            continue
        h, rows = main_table(b, markup="latex")
        out += ["\\begin{table}[t]", "\\centering", "\\small",
                f"\\caption{{{_latex_escape(b.dataset)} $\\times{b.scale}$ (N = {b.n}); mean $\\pm$ 95\\% CI half-width, "
                "best in bold, $^\\dagger$ significantly worse than the best (paired bootstrap).}",
                "\\begin{tabular}{l" + "r" * (len(h) - 1) + "}", "\\toprule",
                " & ".join(_latex_escape(x) for x in h) + " \\\\", "\\midrule"]
        for r in rows:
            out.append(" & ".join(_latex_escape(x) for x in r) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# reported vs reproduced
# ------------------------------------------------------------------------------------------------
def _dataset_key(name: str) -> str:
    """``celeba`` of ``celeba``, ``celeba:/data/CelebA``, ``helen@test-all`` (the published dataset it may match)."""
    return name.split(":", 1)[0].split("@", 1)[0].strip().lower()


def render_compare_reported(boards: list[Board], metrics_doc: dict[str, Any], reported_dataset: str | None = None,
                            include_ablations: bool = False, directory: Any = None,
                            all_methods: bool = False) -> str:
    """Markdown: for each board, the reproduced value of each summary beside every published value for the
    same dataset (or ``reported_dataset``), scale and method, with the table's protocol notes and caveats."""
    from fsrbench.reported import load_reported, load_tables_meta

    values = load_reported(directory)
    meta = load_tables_meta(directory)
    proto = metrics_doc.get("protocol", {})
    lines = ["## Reported vs reproduced", "",
             f"Reproduced: this run, protocol `{proto.get('id', '?')}` (fsrbench's own splits, resizer and analysis "
             "models). Reported: the papers' printed values (leaderboards/reported/*.yaml), each under its own "
             "protocol (stated below). Values are comparable only as far as the protocols agree; ECM, AU and "
             "identity use different analysis models and are never directly comparable. "
             "PSNR/SSIM differences of ~0.1 dB/0.005 are within the spread between papers' own bicubic rows.", ""]
    used_tables: set[str] = set()
    for b in boards:
        target = reported_dataset or _dataset_key(b.dataset)
        vals = [v for v in values if v.dataset.lower() == target.lower() and v.scale == b.scale and v.summary
                and (include_ablations or not meta[v.table_id]["ablation"])]
        lines += [f"### {b.dataset} — x{b.scale}" + (f" vs published {vals[0].dataset}" if vals else ""), ""]
        if not vals:
            known = sorted({v.dataset for v in values if isinstance(v.scale, int)})
            lines += [f"No published numbers for dataset {target!r} at x{b.scale} "
                      f"(published: {', '.join(known)}; use --reported-dataset NAME to compare anyway).", ""]
            continue
        if reported_dataset and _dataset_key(b.dataset) != reported_dataset.lower():
            lines += [f"**Different images:** reproduced on {b.dataset}, reported on {vals[0].dataset} — a calibration "
                      "view, not a reproduction.", ""]
        elif "@" in b.dataset.split(":", 1)[0]:
            lines += [f"**Different images:** reproduced on the split {b.dataset.split('@', 1)[1]!r} of "
                      f"{vals[0].dataset}, reported on the papers' test images — a calibration view, not a "
                      "reproduction.", ""]
        partial = [m for m in b.methods if m in b.flags and b.flags[m].partial]
        if partial:
            lines += [f"**Not comparable: partial evaluation** — {', '.join(partial)} scored on fewer images than the "
                      "split holds; their reproduced values are marked and are no reproduction of the papers' numbers.",
                      ""]
        sources = sorted({v.table_id for v in vals}, key=lambda t: (meta[t]["paper"], t))
        used_tables.update(sources)
        src_label = {t: f"{meta[t]['paper']} {meta[t]['table']}" for t in sources}
        metrics = [k for k in b.headline + b.extra if any(v.summary == k for v in vals)]
        labels = sorted({(v.fsrbench_method or "", v.method) for v in vals}, key=lambda t: (t[0] == "", t[0], t[1]))
        header = ["method", "summary", "reproduced"] + [src_label[t] for t in sources]
        rows = []
        marks: list[str] = []
        for k in metrics:
            arrow = "↑" if b.direction.get(k, True) else "↓"
            done: set[str] = set()
            for m in b.methods:
                if m in REFERENCE_METHODS:
                    continue
                why = b.flags[m].not_comparable_reasons() if m in b.flags else []
                r = [m, f"{k} {arrow}", cell_text(b, m, k, "plain") + (f" (not comparable: {'; '.join(why)})"
                                                                        if why else "")]
                for t in sources:
                    hits = [v for v in vals if v.table_id == t and v.summary == k and v.fsrbench_method == m]
                    r.append(_rep_text(hits, marks))
                rows.append(r)
                done.add(m)
            for fm, label in labels:
                if fm in done or (not fm and not all_methods):
                    continue
                hits_any = [v for v in vals if v.summary == k and v.method == label]
                if not hits_any:
                    continue
                r = [f"{label}" + ("" if not fm else f" ({fm}, not in this run)"), f"{k} {arrow}", "–"]
                for t in sources:
                    r.append(_rep_text([v for v in hits_any if v.table_id == t], marks))
                rows.append(r)
        lines += [tabulate(rows, headers=header, tablefmt="github", disable_numparse=True), ""]
        if marks:
            lines += ["Caveats:", *[f"- [{i + 1}] {c}" for i, c in enumerate(marks)], ""]
    if used_tables:
        lines += ["Protocols of the published tables:"]
        for t in sorted(used_tables):
            m = meta[t]
            lines.append(f"- {m['paper']} {m['table']} ({m['caption']}; {m['source_file']}): {m['protocol']}"
                         + "".join(f" Caveat: {c}" for c in m["caveats"]))
        lines.append("")
    return "\n".join(lines)


def _rep_text(hits: list[Any], marks: list[str]) -> str:
    if not hits:
        return "–"
    parts = []
    for v in hits:
        t = v.text if v.value is not None else "–"
        if v.value is not None and v.unit == "%":
            t += "%"  # the paper's percent; fsrbench reports fractions
        if len(hits) > 1 and v.method:
            t = f"{t} ({v.method})"
        for c in v.caveats:
            if c not in marks:
                marks.append(c)
            t += f" [{marks.index(c) + 1}]"
        parts.append(t)
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------------
def leaderboard(run_dir: str | Path, title: str | None = None, fmt: str = "md", compare_reported: bool = False,
                reported_dataset: str | None = None, significance_tests: bool = True,
                ecm_reference: str | None = None) -> str:
    doc, per_image, profile = load_run(run_dir)
    boards = build_boards(doc, per_image if significance_tests else None, profile, ecm_reference=ecm_reference)
    if fmt == "csv":
        return render_csv(boards)
    if fmt == "latex":
        return render_latex(boards, doc)
    if fmt != "md":
        raise ValueError(f"unknown leaderboard format {fmt!r} (md | csv | latex)")
    md = render_boards_markdown(boards, doc, title, profile)
    if compare_reported or reported_dataset:
        md = md.rstrip() + "\n\n" + render_compare_reported(boards, doc, reported_dataset).rstrip() + "\n"
    return md
