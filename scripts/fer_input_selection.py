"""How the FER input (face box source, flip averaging) was chosen — the measurement behind docs/metrics.md.

Labelled faces: the 30 emotion-labelled faces of ../shared/data/faces-dev (labels.csv).  They are split
once, before any measurement, into a *selection* half and a *held-out* half: within each emotion (sorted by
name), files alternate between the halves, the k-th emotion (sorted) starting on side k mod 2.  The rule
chosen is the one with the best selection accuracy (ties: the higher detection rate on the 300 unlabelled
faces-val crops, then no flip); the held-out accuracy is reported for the chosen rule only as its estimate.

Every candidate runs through fsrbench's own FER path (fsrbench.metrics.face_common.fer_probs with the
options fer_box / fer_flip), so what is measured is what the metrics compute.

    .venv/bin/python scripts/fer_input_selection.py [--data ../shared/data] [--out table.md]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fsrbench.analysis.fer_input import FERInput  # noqa: E402
from fsrbench.api import CellContext  # noqa: E402
from fsrbench.cache import Cache  # noqa: E402
from fsrbench.imageio import read_image  # noqa: E402
from fsrbench.metrics.expression import canonical_emotion  # noqa: E402
from fsrbench.metrics.face_common import fer_hr_boxes, fer_probs, get_fer_model  # noqa: E402

CANDIDATES = [("whole", False), ("whole", True), ("haar", False), ("haar", True), ("hog", False), ("hog", True),
              ("mediapipe", False), ("mediapipe", True)]


def split_halves(rows: list[dict[str, str]]) -> dict[str, str]:
    """file name -> "selection" | "held-out" (the fixed rule of the module docstring)."""
    out: dict[str, str] = {}
    for k, emo in enumerate(sorted({r["emotion"] for r in rows})):
        files = sorted(r["filename"] for r in rows if r["emotion"] == emo)
        for j, f in enumerate(files):
            out[f] = "selection" if (j + k) % 2 == 0 else "held-out"
    return out


def labelled_faces(faces_dev: Path) -> tuple[list[str], np.ndarray, list[str]]:
    rows = [r for r in csv.DictReader(open(faces_dev / "labels.csv")) if r.get("emotion")]
    rows.sort(key=lambda r: r["filename"])
    return [r["filename"] for r in rows], np.stack([read_image(faces_dev / r["filename"]) for r in rows]), \
        [canonical_emotion(r["emotion"]) for r in rows]


def probabilities(images: np.ndarray, box: str, flip: bool) -> tuple[np.ndarray, list[str]]:
    fer = get_fer_model("mini-xception")
    settings = FERInput(box=box, flip=flip)
    ctx = CellContext(dataset="sel", scale=1, method="hr", protocol=None, cache=Cache(None), options={})
    p = np.concatenate([fer_probs(images[s:s + 16], ctx, fer, "hr", settings=settings)[0]
                        for s in range(0, len(images), 16)])
    fb = [f for s in range(0, len(images), 16) for f in fer_hr_boxes(images[s:s + 16], ctx, settings)["fallback"]]
    return p, fb


def ecm_stability(images: np.ndarray, box: str) -> list[str]:
    """Does flip averaging stabilise ECM?  Bicubic x4 / x8 of the faces-val crops, with and without flip:
    ECM, its re-centred bootstrap CI (1000 resamples, seed 0) and the spread of ECM over 20 random halves."""
    from fsrbench.imageio import make_lr, upsample
    from fsrbench.metrics.ecm import _ecm_value, ecm
    from fsrbench.stats import bootstrap_ci

    out = [f"ECM stability, bicubic SR of {len(images)} faces-val crops, fer_box={box}:", "",
           "| scale | flip | ECM | 95% CI | CI width | SD over 20 random halves |", "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    halves = [rng.permutation(len(images))[: len(images) // 2] for _ in range(20)]
    for scale in (4, 8):
        sr = np.stack([upsample(make_lr(h, scale), images.shape[1]) for h in images])
        for flip in (False, True):
            p_hr, _ = probabilities(images, box, flip)
            p_sr = probabilities_sr(sr, images, box, flip)
            ci = bootstrap_ci(_ecm_value, (p_hr, p_sr), n_boot=1000, seed=0, n_missing=0, recentre=True)
            sd = float(np.std([ecm(p_hr[h], p_sr[h])["ecm"] for h in halves]))
            out.append(f"| x{scale} | {'yes' if flip else 'no'} | {ci['value']:.3f} | [{ci['ci_low']:.2f}, "
                       f"{ci['ci_high']:.2f}] | {ci['ci_high'] - ci['ci_low']:.2f} | {sd:.2f} |")
    return out


def ecm_paired_noise(images: np.ndarray, box: str) -> list[str]:
    """When is ECM too noisy to rank?  Paired bootstrap of ECM differences (ECM.compare's statistic) for a
    tiny change (bicubic x4 plus +-6 levels of uniform noise vs bicubic x4) and a large one (x8 vs x4), on
    the first N faces-val crops."""
    from fsrbench.imageio import make_lr, upsample
    from fsrbench import stats
    from fsrbench.metrics.ecm import _ecm_value

    p_hr, _ = probabilities(images, box, False)
    x4 = np.stack([upsample(make_lr(h, 4), images.shape[1]) for h in images])
    noisy = np.clip(x4.astype(int) + np.random.default_rng(0).integers(-6, 7, size=x4.shape), 0, 255).astype(np.uint8)
    sr = {"x4": x4, "x4+noise": noisy, "x8": np.stack([upsample(make_lr(h, 8), images.shape[1]) for h in images])}
    p_sr = {k: probabilities_sr(v, images, box, False) for k, v in sr.items()}
    out = ["Paired ECM differences [95% paired-bootstrap CI, 1000 resamples, seed 0]:", "",
           "| N | x4+noise vs x4 | x8 vs x4 |", "|---|---|---|"]
    for n in (47, 152, len(images)):
        cells = []
        for a in ("x4+noise", "x8"):
            r = stats.paired_bootstrap_set(_ecm_value, (p_hr[:n], p_sr[a][:n]), (p_hr[:n], p_sr["x4"][:n]),
                                           n_boot=1000, seed=0)
            cells.append(f"{r['effect']:+.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")
        out.append(f"| {n} | {cells[0]} | {cells[1]} |")
    return out


def probabilities_sr(sr: np.ndarray, hr: np.ndarray, box: str, flip: bool) -> np.ndarray:
    fer = get_fer_model("mini-xception")
    settings = FERInput(box=box, flip=flip)
    ctx = CellContext(dataset="sel", scale=1, method="sr", protocol=None, cache=Cache(None), options={})
    return np.concatenate([fer_probs(sr[s:s + 16], ctx, fer, "sr", hr=hr[s:s + 16], settings=settings)[0]
                           for s in range(0, len(sr), 16)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data = Path(args.data)
    files, imgs, labels = labelled_faces(data / "faces-dev")
    classes = get_fer_model("mini-xception").classes
    y = np.array([classes.index(lab) for lab in labels])
    half = split_halves([{"filename": f, "emotion": lab} for f, lab in zip(files, labels)])
    sel = np.array([half[f] == "selection" for f in files])
    val = np.stack([read_image(p) for p in sorted((data / "faces-val").glob("*.png"))])
    lines = [f"selection {sel.sum()} faces, held-out {(~sel).sum()} faces (faces-dev, labelled)", "",
             "| FER input | flip | selection acc | held-out acc | all 30 | no HR box (faces-dev 47 / faces-val 300) |",
             "|---|---|---|---|---|---|"]
    results = {}
    nobox_val = {}
    for box, flip in CANDIDATES:
        p, fb = probabilities(imgs, box, flip)
        if box not in nobox_val:
            dev_all = np.stack([read_image(q) for q in sorted((data / "faces-dev").glob("*.png"))])
            nobox_val[box] = (sum(bool(f) for f in probabilities(dev_all, box, False)[1]),
                              sum(bool(f) for f in probabilities(val, box, False)[1]))
        ok = p.argmax(1) == y
        results[(box, flip)] = (ok[sel].mean(), ok[~sel].mean(), p)
        lines.append(f"| {box} | {'yes' if flip else 'no'} | {ok[sel].mean():.3f} ({ok[sel].sum()}/{sel.sum()}) | "
                     f"{ok[~sel].mean():.3f} ({ok[~sel].sum()}/{(~sel).sum()}) | {ok.mean():.3f} | "
                     f"{nobox_val[box][0]} / {nobox_val[box][1]} |")
    best = max(CANDIDATES, key=lambda c: (results[c][0], -nobox_val[c[0]][1], not c[1]))
    p = results[best][2]
    pred = p.argmax(1)
    lines += ["", f"chosen by selection accuracy: fer_box={best[0]}, fer_flip={str(best[1]).lower()}; "
              f"held-out accuracy {results[best][1]:.3f}", "",
              "| class | n | recall (all 30) | held-out recall |", "|---|---|---|---|"]
    for c, name in enumerate(classes):
        m = y == c
        if m.any():
            mh = m & ~sel
            lines.append(f"| {name} | {m.sum()} | {(pred[m] == c).mean():.2f} | "
                         f"{(pred[mh] == c).mean():.2f} ({mh.sum()}) |" if mh.any() else
                         f"| {name} | {m.sum()} | {(pred[m] == c).mean():.2f} | – |")
    lines += ["", *ecm_stability(val, best[0]), "", *ecm_paired_noise(val, best[0])]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
