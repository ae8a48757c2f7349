"""Validate the geometric AU estimator on labelled real faces and print markdown tables for docs/metrics.md.

Usage:  python scripts/au_validation.py [FOLDER]   (default ../shared/data/faces-dev; needs labels.csv with
        ``filename`` and ``emotion`` columns)

Prints (1) the AU presence rate (%) per emotion class (Score > 1, HR face box + MediaPipe fit as in the
metric), (2) the mean AU score per class for the key AUs and the AUC of AU12 happiness-vs-neutral, and
(3) AU-F1 of bicubic x4 / x8 (all faces of the folder, 6-AU subset and 15 AUs, bootstrap CI).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fsrbench.analysis.au_geometric import GeometricAU  # noqa: E402
from fsrbench.imageio import make_lr, read_image, upsample  # noqa: E402
from fsrbench.metrics.au import AUS, SUBSET, macro_f1  # noqa: E402
from fsrbench.metrics.face_common import mesh_hr, mesh_sr  # noqa: E402
from fsrbench.stats import bootstrap_ci  # noqa: E402

# EMFACS prototypes (+ AU.md's proxies for AU25/AU26 on surprise/fear) used to mark expected cells
PROTOTYPE = {"happiness": {"AU06", "AU12"}, "surprise": {"AU01", "AU02", "AU05", "AU25", "AU26"},
             "sadness": {"AU01", "AU04", "AU15"}, "anger": {"AU04", "AU05", "AU07", "AU23"},
             "disgust": {"AU09", "AU15"}, "fear": {"AU01", "AU02", "AU04", "AU05", "AU20", "AU25", "AU26"}}
ORDER = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "(unlabelled)"]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC P(pos > neg) + 0.5 P(tie)."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def main(folder: Path) -> int:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    hr = np.stack([read_image(folder / r["filename"]) for r in rows])
    emo = np.array([(r.get("emotion") or "").strip().lower() or "(unlabelled)" for r in rows])
    est = GeometricAU()
    h = mesh_hr(hr, None)
    ok = h["ok"]
    scores = np.full((len(hr), len(AUS)), np.nan)
    cols = [list(est.aus).index(a) for a in AUS]
    scores[ok] = est.estimate(h["points"][ok])[:, cols]
    present = scores > est.threshold
    print(f"folder: {folder} — {len(hr)} faces, {int(ok.sum())} analysed (HR failures: {int((~ok).sum())}); "
          f"estimator {est.id}, presence = Score > {est.threshold:g}\n")
    classes = [c for c in ORDER if (emo == c).any()]
    print("| AU | " + " | ".join(f"{c} ({int(((emo == c) & ok).sum())})" for c in classes) + " |")
    print("|---|" + "---|" * len(classes))
    for k, a in enumerate(AUS):
        cells = []
        for c in classes:
            m = (emo == c) & ok
            rate = 100 * present[m, k].mean() if m.any() else float("nan")
            star = "*" if a in PROTOTYPE.get(c, set()) else ""
            cells.append(f"{rate:.0f}{star}")
        print(f"| {a}{' ✓' if a in SUBSET else ''} | " + " | ".join(cells) + " |")
    print("\n(* = AU in the class's EMFACS prototype or AU.md proxy; ✓ = 6-AU subset)\n")

    print("| AU | mean score: neutral | happiness | surprise | AUC happiness vs neutral | AUC surprise vs neutral |")
    print("|---|---|---|---|---|---|")
    for a in ("AU06", "AU12", "AU20", "AU05", "AU25", "AU26"):
        k = AUS.index(a)
        s = {c: scores[(emo == c) & ok, k] for c in ("neutral", "happiness", "surprise")}
        print(f"| {a} | {np.mean(s['neutral']):+.2f} | {np.mean(s['happiness']):+.2f} | {np.mean(s['surprise']):+.2f} | "
              f"{auc(s['happiness'], s['neutral']):.2f} | {auc(s['surprise'], s['neutral']):.2f} |")

    print("\nBicubic AU-F1 (HR presence as reference, landmarks fitted in the HR box), all faces:\n")
    print("| scale | AU-F1, 6-AU subset [95% CI] | AU-F1, 15 AUs [95% CI] | n |")
    print("|---|---|---|---|")
    sub = [AUS.index(a) for a in SUBSET]
    for scale in (4, 8):
        sr = np.stack([upsample(make_lr(x, scale)) for x in hr])
        s = mesh_sr(sr, hr, None)
        good = s["ok"]
        ssr = est.estimate(s["points"][good])[:, cols]
        ref, pred = present[good], ssr > est.threshold
        r6 = bootstrap_ci(lambda r, p: macro_f1(r[:, sub], p[:, sub]), (ref, pred), 2000, 0)
        r15 = bootstrap_ci(macro_f1, (ref, pred), 2000, 0)
        print(f"| x{scale} | {r6['value']:.3f} [{r6['ci_low']:.3f}, {r6['ci_high']:.3f}] | "
              f"{r15['value']:.3f} [{r15['ci_low']:.3f}, {r15['ci_high']:.3f}] | {int(good.sum())} |")
    return 0


if __name__ == "__main__":
    default = REPO.parent / "shared" / "data" / "faces-dev"
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
