"""Plots of a results directory (matplotlib, Agg backend; PNG or SVG).

* :func:`metric_vs_scale` — a summary (value ± 95% CI) against the scale factor, one line per method;
* :func:`fer_histograms` — per FER class, density histograms (10 bins on [0, 1], as ECM's L_H) of the class
  probability on HR vs SR (needs ECM's ``ecm_p_hr_k`` / ``ecm_p_sr_k`` per-image columns);
* :func:`identity_threshold_curves` — share of images whose identity cosine SR vs HR is >= t, for t in
  [0, 1] (W-Net Fig. 6 style; needs ``id_cos``);
* :func:`psnr_vs_ecm` — one point per (method, scale): mean PSNR against set-level ECM;
* :func:`fer_confusion` — the FER's confusion matrix on the labelled HR faces of a dataset (the FER card;
  needs the expression metric's ``expr_label`` / ``expr_top_hr``).

Every function returns the matplotlib Figure, or None when the data it needs is absent (the caller skips
the plot).  :func:`save` writes a figure to PNG/SVG bytes or a file.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.report.fer_card import fer_card
from fsrbench.report.leaderboard import REFERENCE_METHODS, _num


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "fsrbench"  # deterministic SVG ids
    return plt


def save(fig: Any, path: str | Path | None = None, fmt: str = "png", dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
    _plt().close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _cells(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc.get("cells", [])


def metric_vs_scale(doc: dict[str, Any], key: str, dataset: str, include_reference: bool = False) -> Any:
    pts: dict[str, list[tuple[int, float, float, float]]] = {}
    hib = True
    for c in _cells(doc):
        if c["dataset"] != dataset or key not in c.get("metrics", {}):
            continue
        if c["method"] in REFERENCE_METHODS and not include_reference:
            continue
        s = c["metrics"][key]
        v, lo, hi = _num(s.get("value")), _num(s.get("ci_low")), _num(s.get("ci_high"))
        hib = bool(s.get("higher_is_better", True))
        if v is None or not math.isfinite(v):
            continue
        lo = v if lo is None or not math.isfinite(lo) else lo
        hi = v if hi is None or not math.isfinite(hi) else hi
        pts.setdefault(c["method"], []).append((int(c["scale"]), v, lo, hi))
    scales = {p[0] for v in pts.values() for p in v}
    if not pts or len(scales) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, v in sorted(pts.items()):
        v.sort()
        x = [p[0] for p in v]
        y = np.array([p[1] for p in v])
        err = np.array([[p[1] - p[2] for p in v], [p[3] - p[1] for p in v]])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=m)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(scales))
    ax.set_xticklabels([f"x{s}" for s in sorted(scales)])
    ax.set_xlabel("scale factor")
    ax.set_ylabel(f"{key} ({'higher' if hib else 'lower'} is better)")
    ax.set_title(f"{key} vs scale — {dataset}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def fer_histograms(per_image: Any, doc: dict[str, Any], dataset: str, scale: int, method: str, bins: int = 10) -> Any:
    """HR vs SR density histograms of each FER class probability (what ECM's L_H compares)."""
    if per_image is None:
        return None
    t = per_image[(per_image["dataset"] == dataset) & (per_image["scale"] == scale) & (per_image["method"] == method)]
    cols_hr = [c for c in per_image.columns if c.startswith("ecm_p_hr_")]
    if not cols_hr or not len(t):
        return None
    classes = None
    for c in _cells(doc):
        if c["dataset"] == dataset and int(c["scale"]) == scale and c["method"] == method:
            classes = c.get("metrics", {}).get("ecm", {}).get("fer_classes")
    k = len(classes) if classes else sum(1 for c in cols_hr if t[c].notna().any())
    if k == 0:
        return None
    classes = classes or [f"class {i}" for i in range(k)]
    plt = _plt()
    ncol = min(4, k)
    nrow = math.ceil(k / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 2.4 * nrow), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for i in range(nrow * ncol):
        ax = axes[i // ncol][i % ncol]
        if i >= k:
            ax.axis("off")
            continue
        hr = t[f"ecm_p_hr_{i}"].to_numpy(float)
        sr = t[f"ecm_p_sr_{i}"].to_numpy(float)
        ok = np.isfinite(hr) & np.isfinite(sr)
        ax.hist(hr[ok], bins=edges, density=True, alpha=0.5, label="HR")
        ax.hist(sr[ok], bins=edges, density=True, alpha=0.5, label="SR")
        ax.set_title(classes[i], fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"FER class probabilities, HR vs SR — {method}, {dataset} x{scale}", fontsize=9)
    fig.tight_layout()
    return fig


def identity_threshold_curves(per_image: Any, dataset: str, scale: int, include_reference: bool = False) -> Any:
    if per_image is None or "id_cos" not in per_image:
        return None
    t = per_image[(per_image["dataset"] == dataset) & (per_image["scale"] == scale)]
    ths = np.linspace(0, 1, 101)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    n_lines = 0
    for m, g in sorted(t.groupby("method"), key=lambda x: x[0]):
        if m in REFERENCE_METHODS and not include_reference:
            continue
        cos = g["id_cos"].to_numpy(float)
        cos = cos[np.isfinite(cos)]
        if not cos.size:
            continue
        ax.plot(ths, [(cos >= th).mean() for th in ths], label=f"{m} (n={cos.size})")
        n_lines += 1
    if not n_lines:
        _plt().close(fig)
        return None
    ax.set_xlabel("identity cosine threshold t")
    ax.set_ylabel("share of images with cos ≥ t")
    ax.set_title(f"identity similarity SR vs HR — {dataset} x{scale}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def psnr_vs_ecm(doc: dict[str, Any], dataset: str) -> Any:
    pts = []
    for c in _cells(doc):
        if c["dataset"] != dataset or c["method"] in REFERENCE_METHODS:
            continue
        p, e = c.get("metrics", {}).get("psnr"), c.get("metrics", {}).get("ecm")
        if not p or not e:
            continue
        x, y = _num(p.get("value")), _num(e.get("value"))
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        pts.append((c["method"], int(c["scale"]), x, y))
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for s in sorted({p[1] for p in pts}):
        sel = [p for p in pts if p[1] == s]
        ax.scatter([p[2] for p in sel], [p[3] for p in sel], label=f"x{s}")
        for m, _, x, y in sel:
            ax.annotate(m, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("PSNR (dB, higher is better)")
    ax.set_ylabel("ECM (lower is better)")
    ax.set_title(f"PSNR vs ECM — {dataset}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def fer_confusion(per_image: Any, doc: dict[str, Any], dataset: str) -> Any:
    """Confusion matrix (rows: label, columns: FER top-1 on HR) of the labelled HR faces of ``dataset``, with
    per-class recall on the row labels; None without labels."""
    from fsrbench.report.fer_card import fer_card

    rows = [c for c in _cells(doc) if c["dataset"] == dataset]
    card = fer_card(rows, per_image, dataset) if per_image is not None else None
    lab = (card or {}).get("labelled")
    if not lab:
        return None
    conf = np.asarray(lab["confusion"])
    names = lab["classes"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    ax.imshow(conf, cmap="Blues")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center",
                        color="white" if conf[i, j] > conf.max() / 2 else "black", fontsize=8)
    recall = {k: v for k, (v, _) in lab["recall"].items()}
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), [f"{k} ({recall[k]:.2f})" if k in recall else k for k in names], fontsize=8)
    ax.set_xlabel("FER top-1 on HR")
    ax.set_ylabel("label (recall)")
    ids = ", ".join(card["fer_model"])
    ax.set_title(f"FER on {lab['n']} labelled HR faces: accuracy {lab['accuracy']:.3f}\n{ids}", fontsize=7)
    return fig
