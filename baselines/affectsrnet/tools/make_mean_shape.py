"""Recompute ``mean_landmarks478.json``: the mean MediaPipe 478-point configuration of training HR faces.

AffectSRNet needs landmarks at test time; when MediaPipe finds no face the method falls back to this
mean shape and flags the image (METHODS.md §7.5). Usage (from the repository root)::

    python -m fsrbench_baselines.affectsrnet.tools.make_mean_shape ../shared/data/faces-train --limit 1000

Coordinates are stored normalised: x / W, y / H, z / W of the 128×128 HR image (MediaPipe's own units).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder of 128x128 HR face PNGs")
    ap.add_argument("--limit", type=int, default=1000, help="use the first N files in sorted order")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mean_landmarks478.json")
    args = ap.parse_args(argv)

    from fsrbench.analysis.mediapipe_mesh import MediaPipeMesh
    from PIL import Image

    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")[: args.limit]
    mesh = MediaPipeMesh()
    pts, failed = [], 0
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        res = mesh.detect(img)
        if not res.ok or res.points is None or res.points.shape != (478, 3):
            failed += 1
            continue
        h, w = img.shape[:2]
        pts.append(res.points / np.array([w, h, w], dtype=np.float64))
    mesh.close()
    if not pts:
        raise SystemExit("no face found in any image")
    mean = np.mean(np.stack(pts), 0)
    doc = {
        "description": "Mean MediaPipe Face Mesh (refine_landmarks, 478 points) of HR training faces, "
                       "normalised (x/W, y/H, z/W). AffectSRNet's landmark fallback (METHODS.md 7.5).",
        "source": f"{args.folder.name}: first {len(files)} files in sorted order, {len(pts)} with a face "
                  f"({failed} failed), fsrbench.analysis.mediapipe_mesh.MediaPipeMesh.detect",
        "n": len(pts),
        "points": [[round(float(v), 6) for v in p] for p in mean],
    }
    args.out.write_text(json.dumps(doc, indent=0))
    print(f"wrote {args.out}: mean of {len(pts)} faces ({failed} failed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
