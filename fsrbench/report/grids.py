"""Comparison grids (PNG) like the papers' qualitative figures: one row per image, columns
LR | each method's SR | HR, and under every tile enlarged eye and mouth crops.

Inputs: a results directory (``run.json`` to reopen the dataset, ``sr/<dataset>/x<s>/<method>/<id>.png`` SR
images, ``per_image.csv`` to pick best/worst images).  HR images are re-read from the dataset (never
copied into the results); LR is regenerated with the protocol's degradation and shown nearest-upscaled.

Crop placement [CHOICE grids.crops]: from MediaPipe-478 landmarks detected on the HR image
(``fsrbench.analysis.get_landmarks("mediapipe478")``): eyes = bounding box of both eye contours
(points 33, 133, 159, 145, 263, 362, 386, 374), mouth = lip corners and mid-lips (61, 291, 0, 17), each grown
by 35% and widened to a fixed aspect (eyes 3:1, mouth 2:1).  When landmarks are unavailable (model missing or
no face found) fixed boxes for 128x128 aligned faces are used: eyes (20, 36)-(108, 66), mouth (36, 80)-(92, 108)
(x0, y0)-(x1, y1) pixels; the grid's caption says which was used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fsrbench.data import open_dataset
from fsrbench.imageio import make_lr, read_image
from fsrbench.results import load_json, sr_path

EYE_POINTS = (33, 133, 159, 145, 263, 362, 386, 374)
MOUTH_POINTS = (61, 291, 0, 17)
FIXED_EYES = (20, 36, 108, 66)
FIXED_MOUTH = (36, 80, 92, 108)
TILE = 128
CROP_W = 128
LABEL_H = 16


def _grow(box: tuple[float, float, float, float], grow: float, aspect: float, size: int = TILE) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = (x1 - x0) * (1 + grow), (y1 - y0) * (1 + grow)
    w = max(w, h * aspect)
    h = w / aspect
    w, h = min(w, size), min(h, size)
    x0 = int(round(min(max(cx - w / 2, 0), size - w)))
    y0 = int(round(min(max(cy - h / 2, 0), size - h)))
    return x0, y0, int(round(x0 + w)), int(round(y0 + h))


def crop_boxes(hr: np.ndarray, use_landmarks: bool = True) -> tuple[dict[str, tuple[int, int, int, int]], str]:
    """{'eyes': box, 'mouth': box} in HR pixels and where they came from ('mediapipe478' or 'fixed')."""
    if use_landmarks:
        try:
            from fsrbench.analysis import get_landmarks

            res = get_landmarks("mediapipe478").detect(hr)
            if res.ok and res.points is not None:
                p = np.asarray(res.points)[:, :2]
                e, m = p[list(EYE_POINTS)], p[list(MOUTH_POINTS)]
                return ({"eyes": _grow((*e.min(0), *e.max(0)), 0.35, 3.0),
                         "mouth": _grow((*m.min(0), *m.max(0)), 0.35, 2.0)}, "mediapipe478")
        except Exception:  # noqa: BLE001 - model missing / unavailable: fall back to fixed boxes
            pass
    return {"eyes": FIXED_EYES, "mouth": FIXED_MOUTH}, "fixed"


def _tile(img: np.ndarray, boxes: dict[str, tuple[int, int, int, int]]) -> Image.Image:
    """The 128x128 image (with crop outlines) above its enlarged eye and mouth crops."""
    base = Image.fromarray(img).convert("RGB")
    parts = []
    for name in ("eyes", "mouth"):
        x0, y0, x1, y1 = boxes[name]
        c = base.crop((x0, y0, x1, y1))
        h = max(1, round(CROP_W * (y1 - y0) / max(1, x1 - x0)))
        parts.append(c.resize((CROP_W, h), Image.NEAREST))
    shown = base.copy()
    d = ImageDraw.Draw(shown)
    for name, col in (("eyes", (255, 215, 0)), ("mouth", (0, 200, 255))):
        d.rectangle(boxes[name], outline=col)
    out = Image.new("RGB", (TILE, TILE + sum(p.height for p in parts) + 2 * len(parts)), "white")
    out.paste(shown, (0, 0))
    y = TILE + 2
    for p in parts:
        out.paste(p, (0, y))
        y += p.height + 2
    return out


def make_grid(rows: list[dict[str, Any]], methods: list[str], title: str = "") -> Image.Image:
    """``rows``: [{"label", "lr" (uint8 HxWx3 at LR size), "sr": {method: uint8 128x128x3 | None}, "hr",
    "boxes", "captions": {method: str}}] -> one PIL image."""
    cols = ["LR"] + methods + ["HR"]
    tiles = []
    for r in rows:
        lr_big = np.asarray(Image.fromarray(r["lr"]).resize((TILE, TILE), Image.NEAREST))
        imgs = [lr_big] + [r["sr"].get(m) for m in methods] + [r["hr"]]
        tiles.append([_tile(im, r["boxes"]) if im is not None else None for im in imgs])
    th = max((t.height for row in tiles for t in row if t is not None), default=TILE)
    pad = 4
    width = len(cols) * (TILE + pad) + pad
    height = LABEL_H * 2 + len(rows) * (th + LABEL_H * 2 + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((pad, 2), title, fill="black")
    for j, c in enumerate(cols):
        d.text((pad + j * (TILE + pad) + 2, LABEL_H + 2), c[:20], fill="black")
    y = LABEL_H * 2
    for r, row in zip(rows, tiles):
        d.text((pad, y + 2), r["label"][:100], fill="black")
        y += LABEL_H
        for j, t in enumerate(row):
            x = pad + j * (TILE + pad)
            if t is None:
                d.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline="gray")
                d.text((x + 4, y + 56), "not available", fill="gray")
            else:
                canvas.paste(t, (x, y))
            cap = r.get("captions", {}).get(cols[j])
            if cap:
                d.text((x + 2, y + th + 1), cap[:22], fill="black")
        y += th + LABEL_H + pad
    return canvas


def _sr_path(run_dir: Path, dataset: str, scale: int, method: str, image_id: str) -> Path:
    return sr_path(run_dir, dataset, scale, method, image_id)


def _open_dataset(run: dict[str, Any], dataset: str) -> Any:
    return open_dataset(dataset, **(run.get("spec", {}).get("dataset_options") or {}))


def select_images(per_image: Any, dataset: str, scale: int, column: str, method: str, k: int = 3,
                  higher_is_better: bool = True) -> dict[str, list[str]]:
    """The ``k`` best and worst images of ``method`` by per-image ``column`` ({"best": ids, "worst": ids})."""
    t = per_image[(per_image["dataset"] == dataset) & (per_image["scale"] == scale) & (per_image["method"] == method)]
    if column not in t:
        return {"best": [], "worst": []}
    t = t[np.isfinite(t[column].astype(float))].sort_values([column, "image_id"], ascending=not higher_is_better,
                                                              kind="stable")
    ids = t["image_id"].astype(str).tolist()
    return {"best": ids[:k], "worst": ids[::-1][:k]}


def grid_for(run_dir: str | Path, dataset: str, scale: int, image_ids: list[str], methods: list[str],
             title: str = "", per_image: Any = None, caption_column: str | None = "psnr",
             use_landmarks: bool = True) -> tuple[Image.Image, str]:
    """Build the grid for these images from a results directory; returns (image, crop source)."""
    run_dir = Path(run_dir)
    run = load_json(run_dir / "run.json")
    ds = _open_dataset(run, dataset)
    rows = []
    sources = set()
    for sid in image_ids:
        hr = ds.load(sid).hr
        boxes, src = crop_boxes(hr, use_landmarks)
        sources.add(src)
        sr = {}
        caps = {}
        for m in methods:
            p = _sr_path(run_dir, dataset, scale, m, sid)
            sr[m] = read_image(p) if p.is_file() else None
            if per_image is not None and caption_column and caption_column in per_image:
                v = per_image[(per_image["dataset"] == dataset) & (per_image["scale"] == scale)
                              & (per_image["method"] == m) & (per_image["image_id"].astype(str) == sid)][caption_column]
                if len(v) and np.isfinite(float(v.iloc[0])):
                    caps[m] = f"{caption_column} {float(v.iloc[0]):.2f}"
        rows.append({"label": sid, "lr": make_lr(hr, scale), "hr": hr, "sr": sr, "boxes": boxes, "captions": caps})
    src = "/".join(sorted(sources)) or "fixed"
    img = make_grid(rows, methods, title=f"{title}  [crops: {src}]" if title else f"crops: {src}")
    return img, src
