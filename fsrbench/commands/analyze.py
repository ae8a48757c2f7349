"""``fsrbench analyze --images DIR --models landmarks,fer,identity --out FILE.csv``.

Per-image face analysis, for users who want to see what the face metrics see: face found?, the HR face
box (MediaPipe landmarks-to-ROI rule), landmark count, FER probabilities, whether an identity descriptor
could be computed, and the reason when something failed. Results go through the on-disk analysis cache
(:class:`fsrbench.cache.Cache`; ``--cache DIR``, default ``$FSRBENCH_CACHE`` or ~/.cache/fsrbench,
``--no-cache`` to disable), so re-running on the same images is fast. An unreadable image or a face that
cannot be analysed becomes a row with a reason, never a crash.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

import fsrbench.analysis as A
from fsrbench.analysis.fer_input import FERInput

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MODEL_KINDS = ("landmarks", "fer", "identity")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("analyze", help="per-image face analysis (face found, box, landmarks, FER, identity) to CSV")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--models", default="landmarks,fer,identity",
                   help="comma-separated subset of: landmarks, fer, identity (default: all)")
    p.add_argument("--out", required=True, help="output CSV file")
    p.add_argument("--landmarks", default="mediapipe478", help="landmark model (default mediapipe478)")
    p.add_argument("--fer", default="mini-xception", help="FER plugin (default mini-xception)")
    p.add_argument("--fer-weights", default=None, help="weights path for FER plugins that need one (ddamfn)")
    p.add_argument("--fer-box", default="hog", metavar="hog|haar|mediapipe|whole",
                   help="face box the FER sees (default hog: dlib's HOG box; as the run's ECM/expression metrics)")
    p.add_argument("--fer-flip", action="store_true", help="average FER probabilities with the mirrored image's")
    p.add_argument("--identity", default="dlib-torch",
                   help="identity model (default dlib-torch: dlib's descriptor, network in PyTorch; dlib: dlib itself)")
    p.add_argument("--cache", default=None, help="analysis cache folder (default $FSRBENCH_CACHE or ~/.cache/fsrbench)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the analysis cache")
    p.set_defaults(func=main)


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _fmt(x: Any) -> Any:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return x


def _fer_box(fer_in: FERInput, img: np.ndarray, lm: Any, det: Any, cache: Any) -> tuple[Any, str]:
    """The FER face box of an (HR) image as the metrics use it, and the fallback reason ("" if none)."""
    if fer_in.box == "whole":
        return None, ""
    if fer_in.box == "hog":
        dl = A.get_landmarks("dlib68")
        r = A.detect_cached(dl, img, cache)
        box, why = (r.box, "") if r.ok and r.box is not None else (None, r.reason or "no face found")
    elif fer_in.box == "haar":
        from fsrbench.analysis.fer_input import get_haar

        box, why = get_haar().detect(img)
    else:  # mediapipe: the landmark model's HR box when it is MediaPipe
        mesh = lm if getattr(lm, "num_points", 0) == 478 else A.get_landmarks("mediapipe478")
        r = det if mesh is lm else A.detect_cached(mesh, img, cache)
        box, why = (r.box, "") if r.ok and r.box is not None else (None, r.reason or "no face found")
    return box, "" if box is not None else f"whole image: {why}"


def _fer_predict(fer: Any, fer_in: FERInput, img: np.ndarray, box: Any, cache: Any) -> np.ndarray:
    if not fer_in.flip:
        return A.fer_cached(fer, img[None], [box], cache)[0]
    from fsrbench.analysis.fer_input import mirror_box

    mirrored = np.ascontiguousarray(img[:, ::-1])
    return (A.fer_cached(fer, img[None], [box], cache)[0]
            + A.fer_cached(fer, mirrored[None], [mirror_box(box, img.shape[1])], cache)[0]) / 2.0


def main(args: argparse.Namespace) -> int:
    from fsrbench import analysis as A
    from fsrbench.api import DataError
    from fsrbench.cache import Cache, default_cache_dir
    from fsrbench.imageio import read_image

    root = Path(args.images)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root}: no such folder")
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    bad = [k for k in kinds if k not in MODEL_KINDS]
    if bad or not kinds:
        raise ValueError(f"--models {args.models!r}: choose from {', '.join(MODEL_KINDS)}")
    files = list_images(root)
    if not files:
        raise FileNotFoundError(f"--images {root}: no image files ({', '.join(sorted(IMAGE_EXTS))})")
    cache = None if args.no_cache else Cache(Path(args.cache) if args.cache else default_cache_dir())

    # models are loaded once; Unavailable propagates (cli prints the fix)
    lm = A.get_landmarks(args.landmarks)
    fer = None
    fer_in = FERInput.from_options({"fer_box": getattr(args, "fer_box", "hog"), "fer_flip": getattr(args, "fer_flip", False)})
    if "fer" in kinds:
        fer = A.get_fer(args.fer, **({"weights": args.fer_weights} if args.fer_weights else {}))
    ident = A.get_identity(args.identity) if "identity" in kinds else None

    header = ["file", "width", "height", "face_found", "box_x0", "box_y0", "box_x1", "box_y1", "box_rotation",
              "box_source"]
    if "landmarks" in kinds:
        header += ["landmark_model", "landmark_count", "landmark_presence"]
    if fer is not None:
        header += ["fer_model", "fer_box", "fer_fallback", "fer_top"] + [f"fer_{c}" for c in fer.classes]
    if ident is not None:
        header += ["identity_model", "identity_ok", "identity_box"]
    header += ["reason"]

    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_found = 0
    with open(out_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for path in files:
            row: dict[str, Any] = {k: "" for k in header}
            row["file"] = str(path.relative_to(root))
            reasons = []
            try:
                img = read_image(path)
            except DataError as exc:
                row["face_found"] = False
                row["reason"] = str(exc)
                w.writerow(row)
                continue
            row["height"], row["width"] = img.shape[:2]
            det = A.detect_cached(lm, img, cache)
            row["face_found"] = bool(det.ok)
            if det.box is not None:
                for k, v in zip(("box_x0", "box_y0", "box_x1", "box_y1", "box_rotation"), det.box.as_tuple()):
                    row[k] = _fmt(float(v))
                row["box_source"] = det.extra.get("source", "")
            if not det.ok:
                reasons.append(f"landmarks: {det.reason}")
            else:
                n_found += 1
            if "landmarks" in kinds:
                row["landmark_model"] = lm.id
                if det.ok:
                    fit = A.fit_cached(lm, img, det.box, cache)
                    row["landmark_count"] = 0 if fit.points is None else len(fit.points)
                    row["landmark_presence"] = _fmt(float(fit.extra.get("presence", float("nan"))))
                    if not fit.ok:
                        reasons.append(f"landmarks: {fit.reason}")
                else:
                    row["landmark_count"] = 0
            if fer is not None:
                fer_box, fb_reason = _fer_box(fer_in, img, lm, det, cache)
                row["fer_model"] = fer_in.pipeline_id(fer.id)
                row["fer_box"] = "" if fer_box is None else " ".join(f"{v:.1f}" for v in fer_box.as_tuple()[:4])
                row["fer_fallback"] = fb_reason
                p = _fer_predict(fer, fer_in, img, fer_box, cache)
                if np.all(np.isfinite(p)):
                    row["fer_top"] = fer.classes[int(np.argmax(p))]
                    for c, v in zip(fer.classes, p):
                        row[f"fer_{c}"] = _fmt(float(v))
                else:
                    reasons.append("fer: face could not be preprocessed")
            if ident is not None:
                row["identity_model"] = ident.id
                box = A.detect_box_cached(ident, img, cache) if hasattr(ident, "detect_box") else det.box
                if box is None:
                    row["identity_ok"] = False
                    reasons.append("identity: no face found by the identity model's detector")
                else:
                    row["identity_box"] = " ".join(f"{v:.1f}" for v in box.as_tuple()[:4])
                    v = A.embed_cached(ident, img, box, cache)
                    row["identity_ok"] = v is not None
                    if v is None:
                        reasons.append("identity: descriptor could not be computed")
            row["reason"] = "; ".join(reasons)
            w.writerow(row)
    print(f"analyzed {len(files)} image(s): face found in {n_found}; wrote {out_path}", file=sys.stderr)
    return 0
