"""The FER card and the paired ECM ranking of a board (issue 22).

* :func:`fer_card` — how good is the FER behind ECM and expression agreement on *this* run's data: the FER
  pipeline id, its preprocessing in words, how many images fell back to the whole image (no HR face box),
  and — when the dataset carries emotion labels (a ``folder:`` dataset's labels.csv) — the FER's accuracy
  on the labelled HR images with a 95% CI, per-class recall and the confusion matrix.  HR analyses are the
  same for every method, so they are read from one method's rows.
* :func:`ecm_paired` — ECM of each method as the paired difference against a common reference method
  (the metric's own ``ECM.compare``: paired bootstrap on the images both scored).  The board ranks methods
  on ECM by this difference and shows it with its CI; a difference whose CI contains 0 is marked as too
  noisy to rank against the reference.

[CHOICE] reference: ``--ecm-reference METHOD``; by default ``bicubic`` when it is on the board (every FSR
paper's baseline), else the method with the best ECM.
"""
from __future__ import annotations

import math
from typing import Any, Collection

import numpy as np
from tabulate import tabulate

from fsrbench.metrics.ecm import ECM
from fsrbench.stats import mean_ci

FER_SUMMARIES = ("ecm", "expression_agreement", "expression_acc_hr", "expression_acc_sr")
DEFAULT_ECM_REFERENCE = "bicubic"
_OLD_INPUT = "whole image as the face (no detector box; the FER input before issue 22)"


def _rows_of(per_image: Any, dataset: str, method: str | None = None, scale: int | None = None) -> Any:
    t = per_image[per_image["dataset"] == dataset]
    if scale is not None:
        t = t[t["scale"] == scale]
    if method is not None:
        t = t[t["method"] == method]
    if "status" in t:
        t = t[t["status"] == "ok"]
    return t


def _preprocessing(s: dict[str, Any]) -> str:
    words = s.get("fer_preprocessing")
    if isinstance(words, str) and words:
        return words
    fid = str(s.get("fer_model", ""))
    return _OLD_INPUT if "-hrbox-" not in fid else "HR face box (details not stored)"


def labelled_accuracy(per_image: Any, dataset: str, classes: list[str]) -> dict[str, Any] | None:
    """FER accuracy on the labelled HR images of ``dataset`` (expression metric columns), per-class recall,
    confusion matrix [true, predicted]; None when the run has no labels."""
    if per_image is None or not len(per_image) or "expr_label" not in per_image or "expr_top_hr" not in per_image:
        return None
    t = _rows_of(per_image, dataset)
    best = None
    for (_, _), g in t.groupby(["method", "scale"], sort=True):
        g = g[np.isfinite(g["expr_label"].to_numpy(float)) & np.isfinite(g["expr_top_hr"].to_numpy(float))]
        if best is None or len(g) > len(best):
            best = g
    if best is None or not len(best):
        return None
    g = best.drop_duplicates("image_id")
    y = g["expr_label"].to_numpy(float).astype(int)
    p = g["expr_top_hr"].to_numpy(float).astype(int)
    c = max(len(classes), int(max(y.max(), p.max())) + 1)
    names = list(classes) + [f"class {k}" for k in range(len(classes), c)]
    conf = np.zeros((c, c), dtype=int)
    np.add.at(conf, (y, p), 1)
    acc = mean_ci((y == p).astype(float))
    recall = {names[k]: (float(conf[k, k] / conf[k].sum()), int(conf[k].sum())) for k in range(c) if conf[k].sum()}
    return {"n": int(len(y)), "accuracy": acc["value"], "ci_low": acc["ci_low"], "ci_high": acc["ci_high"],
            "recall": recall, "confusion": conf.tolist(), "classes": names}


def fer_card(rows: list[dict[str, Any]], per_image: Any, dataset: str) -> dict[str, Any] | None:
    """The FER card of one board (``rows``: its metrics.json cells); None when no FER-based metric ran."""
    sums = [c["metrics"][k] for c in rows for k in FER_SUMMARIES if k in c.get("metrics", {})]
    if not sums:
        return None
    ids = sorted({str(s.get("fer_model")) for s in sums if s.get("fer_model")})
    first = next(s for s in sums if s.get("fer_model")) if ids else sums[0]
    classes = list(first.get("fer_classes") or [])
    fallback = [int(s["n_fer_fallback"]) for s in sums if isinstance(s.get("n_fer_fallback"), (int, float))]
    n_img = max((int(c.get("n_images", 0)) for c in rows), default=0)
    return {"fer_model": ids, "preprocessing": _preprocessing(first), "classes": classes,
            "n_fallback": max(fallback) if fallback else None, "n_images": n_img,
            "labelled": labelled_accuracy(per_image, dataset, classes)}


def card_lines(card: dict[str, Any] | None) -> list[str]:
    """Markdown lines of a FER card."""
    if card is None:
        return ["FER card: no FER-based metric (ecm, expression) in this run.", ""]
    lines = ["FER card (the expression model behind ecm and expression agreement):",
             "- model: " + ", ".join(f"`{i}`" for i in card["fer_model"]) if card["fer_model"] else "- model: ?",
             f"- preprocessing: {card['preprocessing']}"]
    if card["n_fallback"] is None:
        lines.append("- images without an HR face box: not recorded (whole-image input)")
    else:
        lines.append(f"- images without an HR face box (whole image used): {card['n_fallback']} of {card['n_images']}")
    lab = card["labelled"]
    if lab is None:
        lines.append("- accuracy on labelled HR faces: this dataset carries no emotion labels")
    else:
        rec = ", ".join(f"{k} {v:.2f} ({n})" for k, (v, n) in lab["recall"].items())
        lines += [f"- HR accuracy on the {lab['n']} emotion-labelled faces of this dataset: {lab['accuracy']:.3f} "
                  f"[{lab['ci_low']:.3f}, {lab['ci_high']:.3f}]",
                  f"- per-class recall (labelled faces): {rec}"]
    return lines + [""]


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def ecm_paired(rows: list[dict[str, Any]], per_image: Any, dataset: str, scale: int,
               reference: str | None = None, n_boot: int = 1000, seed: int = 0,
               not_ranked: Collection[str] = ("hr-oracle",)) -> dict[str, Any] | None:
    """ECM(method) - ECM(reference) per method (``ECM.compare``), or None without ECM per-image data.
    ``not_ranked`` (the board's reference rows, e.g. hr-oracle) are never chosen as the reference."""
    have = {c["method"]: _num(c["metrics"]["ecm"].get("value")) for c in rows if "ecm" in c.get("metrics", {})}
    if per_image is None or not len(per_image) or "ecm_p_hr_0" not in per_image or len(have) < 2:
        return None
    candidates = {m: v for m, v in have.items() if m not in not_ranked and v is not None and math.isfinite(v)}
    if reference is None or reference not in have:
        if DEFAULT_ECM_REFERENCE in have:
            reference = DEFAULT_ECM_REFERENCE
        elif candidates:
            reference = min(candidates, key=lambda m: candidates[m])
        else:
            return None
    metric = ECM(n_boot=n_boot, seed=seed)
    ref_t = _rows_of(per_image, dataset, reference, scale)
    out: dict[str, dict[str, Any]] = {}
    for m in sorted(have):
        if m == reference:
            continue
        res = metric.compare(_rows_of(per_image, dataset, m, scale), ref_t)["ecm"]
        lo, hi = _num(res.get("ci_low")), _num(res.get("ci_high"))
        res["rankable"] = bool(lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
                               and (lo > 0 or hi < 0))
        out[m] = res
    return {"reference": reference, "rows": out, "n_boot": n_boot, "seed": seed}


def ecm_lines(info: dict[str, Any] | None, values: dict[str, float | None]) -> list[str]:
    """Markdown of the paired ECM section (``values``: each method's ECM on the board)."""
    if info is None:
        return []
    ref = info["reference"]
    body = []
    for m, r in sorted(info["rows"].items(), key=lambda kv: (not math.isfinite(kv[1]["effect"]), kv[1]["effect"])):
        v = values.get(m)
        ci = f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if math.isfinite(r.get("ci_low", math.nan)) else "–"
        body.append([m, "–" if v is None else f"{v:.2f}", f"{r['effect']:+.2f} {ci}", str(r["n"]),
                     "yes" if r["rankable"] else "no: CI contains 0"])
    head = ["method", "ecm", f"ΔECM vs {ref} [95% CI]", "N paired", f"distinguishable from {ref}"]
    return [f"ECM paired against `{ref}`: ΔECM = ECM(method) − ECM({ref}) on the images both scored, "
            f"{info['n_boot']} paired bootstrap resamples (seed {info['seed']}); negative = closer to HR than "
            f"{ref}. ECM is ranked by ΔECM; where the CI contains 0, ECM is too noisy to rank the method "
            f"against {ref} (docs/metrics.md, \"ECM at small N\").", "",
            tabulate(body, headers=head, tablefmt="github", disable_numparse=True), ""]
