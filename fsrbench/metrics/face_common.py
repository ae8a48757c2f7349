"""Shared face analysis for the face-fidelity metrics (ECM, expression, AU F1, landmarks, identity).

What lives here, so that each model runs once per image:

* **Model instances**: the metrics' default face models, named (:func:`get_fer_model`, :func:`get_mesh`,
  :func:`get_dlib68`, :func:`get_identity_model`, :func:`get_au_estimator`) and fetched through
  :func:`fsrbench.analysis.require` -- one instance per process, shared with the rest of fsrbench.
* **HR analyses, cached on disk** with ``ctx.cache`` (:class:`fsrbench.cache.Cache`), keyed by
  ``image_key(hr)`` and the model id: the face box, landmarks, FER probabilities and identity descriptor of
  an HR image are computed once, whichever method is being scored.  SR analyses are cached the same way
  (keyed by the SR content *and* the HR box) only with metric option ``cache_sr=true``.
* **Per-batch sharing** through ``ctx.memo`` (a fresh dict per batch in the runner): FER on the SR batch
  runs once for ECM and expression, MediaPipe once for AU F1 and the 478-point NME, dlib once for
  landmarks and identity.  Memo entries carry the batch's image keys and are only reused for the same images.
* **Failures are data**: every function returns per-image ``ok`` flags and ``reason`` strings
  ("hr: no face found ...", "sr: ..."); metrics turn them into NaN values plus a reason column.

Face boxes (docs/spec/conventions.md §4): the SR image is always analysed with the HR image's box, never with a fresh
detection.  MediaPipe: HR box from ``MediaPipeMesh.detect`` (landmarks-to-ROI rule); the 478 points of
*both* HR and SR come from ``MediaPipeMesh.fit(image, hr_box)`` (docs/spec/au.md §1), so HR and SR go through the
same pipeline and an identical SR gives identical landmarks.  dlib: HR box from ``Dlib68.detect`` (HOG);
68 points and the identity descriptor of HR and SR are computed inside that box.
FER: the HR image's face box (default dlib HOG; option ``fer_box``: ``hog`` | ``haar`` | ``mediapipe`` |
``whole``, :mod:`fsrbench.analysis.fer_input`) for HR and SR alike; no HR box -> whole image, counted in the
metrics' ``*_fer_fallback`` column (option ``fer_fallback=skip`` leaves such images out).
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import numpy as np

from fsrbench.analysis import DEFAULT_IDENTITY, require
from fsrbench.analysis.fer_input import FERInput, get_haar, predict
from fsrbench.api.face import FaceBox
from fsrbench.api import CellContext, Unavailable
from fsrbench.cache import Cache, image_key

_FALLBACK_CACHE = Cache(None)  # in-memory cache for contexts without one (tests, the Python API)


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------
def get_fer_model(name: str = "mini-xception") -> Any:
    """The FER plugin ``name`` (entry-point group ``fsrbench.fer``), one instance per process."""
    return require("fer", name)


def get_mesh(name: str = "mediapipe478") -> Any:
    return require("landmarks", name)


def get_dlib68(name: str = "dlib68") -> Any:
    return require("landmarks", name)


def get_identity_model(name: str | None = None) -> Any:
    """The identity model ``name`` (default :data:`fsrbench.analysis.DEFAULT_IDENTITY`, ``dlib-torch``)."""
    return require("identity", name or DEFAULT_IDENTITY)


def identity_name(ctx: CellContext | None) -> str | None:
    """The identity model a cell uses: metric option ``identity`` (``fsrbench run --identity NAME``) or None
    for the default."""
    opts = (getattr(ctx, "options", None) or {}) if ctx is not None else {}
    name = opts.get("identity")
    return str(name) if name else None


def get_au_estimator(name: str = "geometric") -> Any:
    return require("au", name)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _cache(ctx: CellContext | None) -> Cache:
    c = getattr(ctx, "cache", None) if ctx is not None else None
    return c if c is not None else _FALLBACK_CACHE


def batch_keys(images: np.ndarray, ctx: CellContext | None = None) -> tuple[str, ...]:
    """Content keys (:func:`~fsrbench.cache.image_key`) of a batch's images.

    With a ``ctx``, a batch already hashed for this harness batch (``ctx.memo``) gets its keys back: the
    images are compared byte for byte with a private copy, which costs a small fraction of hashing them again
    (the face metrics ask for the keys of the same SR and HR batches about ten times each)."""
    memo = getattr(ctx, "memo", None) if ctx is not None else None
    arr = np.asarray(images)
    seen = memo.setdefault("__batch_keys__", []) if memo is not None else []
    for stored, keys in seen:
        if stored.shape == arr.shape and stored.dtype == arr.dtype and np.array_equal(stored, arr):
            return keys
    keys = tuple(image_key(im) for im in arr)
    if memo is not None:
        seen.append((arr.copy(), keys))
    return keys


def _memo(ctx: CellContext | None, name: str, keys: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """Compute once per (batch, name): reuse ``ctx.memo[name]`` only if it was made for the same images."""
    memo = getattr(ctx, "memo", None) if ctx is not None else None
    if memo is None:
        return compute()
    hit = memo.get(name)
    if hit is not None and hit[0] == keys:
        return hit[1]
    value = compute()
    memo[name] = (keys, value)
    return value


def box_to_array(box: FaceBox | None) -> np.ndarray:
    return np.array(box.as_tuple(), dtype=np.float64) if box is not None else np.full(5, np.nan)


def array_to_box(a: np.ndarray) -> FaceBox | None:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != (5,) or not np.all(np.isfinite(a)):
        return None
    return FaceBox(*map(float, a))


def _cached_each(ctx: CellContext | None, model_id: str, keys: Sequence[str], extras: Sequence[Any],
                 compute: Callable[[list[int]], list[dict[str, Any]]], side: str = "hr") -> list[dict[str, Any]]:
    """Per-image cache lookup; ``compute(missing_indices)`` returns values for the misses (stored).

    HR analyses always go through ``ctx.cache``; SR analyses only with option ``cache_sr`` (default off:
    SR images differ per method, so caching them would mostly fill the disk).
    """
    opts = (getattr(ctx, "options", None) or {}) if ctx is not None else {}
    use = side == "hr" or str(opts.get("cache_sr", "false")).lower() in ("1", "true", "yes")
    shared = _cache(ctx)
    ck = [Cache.make_key(k, e) for k, e in zip(keys, extras)]
    # Reading is always safe: the key is (model id, image content, box), so an SR image identical to an
    # analysed HR image (hr-oracle, or a method that returns an input unchanged) reuses that analysis.
    # Without cache_sr, SR results are kept in memory for this batch only, never written.
    out: list[dict[str, Any] | None] = [shared.get(model_id, k) if use else shared.peek(model_id, k) for k in ck]
    miss = [i for i, v in enumerate(out) if v is None]
    if miss:
        for i, v in zip(miss, compute(miss)):
            if use:
                shared.put(model_id, ck[i], v)
            out[i] = v
    return out  # type: ignore[return-value]


def _reason(v: dict[str, Any]) -> str:
    return str(v.get("reason", "")) if not bool(v.get("ok", False)) else ""


# ------------------------------------------------------------------------------------------------
# MediaPipe 478 (HR box + fitted points on HR and SR)
# ------------------------------------------------------------------------------------------------
def mesh_hr(hr: np.ndarray, ctx: CellContext | None) -> dict[str, Any]:
    """HR MediaPipe analysis of a batch: ``box`` [B,5], ``points`` [B,478,3] (fit with the HR box), ``ok``, ``reason``."""
    keys = batch_keys(hr, ctx)

    def run() -> dict[str, Any]:
        mesh = get_mesh()
        det = _cached_each(ctx, mesh.id + "/detect-box", keys, [None] * len(keys),
                           lambda miss: [_detect_box(mesh, hr[i]) for i in miss])
        boxes = [array_to_box(d["box"]) if bool(d["ok"]) else None for d in det]
        fitted = _fit_points(ctx, mesh, hr, keys, boxes, 478, "hr")
        ok = np.array([bool(d["ok"]) and f["ok"] for d, f in zip(det, fitted)], dtype=bool)
        reason = [("hr: " + _reason(d)) if not bool(d["ok"]) else (("hr: " + f["reason"]) if not f["ok"] else "")
                  for d, f in zip(det, fitted)]
        return {"box": np.stack([box_to_array(b) for b in boxes]), "boxes": boxes,
                "points": np.stack([f["points"] for f in fitted]), "ok": ok, "reason": reason}

    return _memo(ctx, "mesh:hr", keys, run)


def mesh_sr(sr: np.ndarray, hr: np.ndarray, ctx: CellContext | None) -> dict[str, Any]:
    """SR MediaPipe points fitted in the HR box: ``points`` [B,478,3], ``ok``, ``reason`` (HR failures included)."""
    keys = batch_keys(sr, ctx)
    hr_res = mesh_hr(hr, ctx)

    def run() -> dict[str, Any]:
        mesh = get_mesh()
        fitted = _fit_points(ctx, mesh, sr, keys, hr_res["boxes"], 478, "sr")
        ok = hr_res["ok"] & np.array([f["ok"] for f in fitted], dtype=bool)
        reason = [hr_res["reason"][i] or ("" if fitted[i]["ok"] else "sr: " + fitted[i]["reason"])
                  for i in range(len(keys))]
        return {"points": np.stack([f["points"] for f in fitted]), "ok": ok, "reason": reason}

    return _memo(ctx, "mesh:sr:" + hashlib.sha256("".join(batch_keys(hr, ctx)).encode()).hexdigest()[:16], keys, run)


def _detect_box(model: Any, image: np.ndarray) -> dict[str, Any]:
    try:
        res = model.detect(image)
    except Exception as exc:  # noqa: BLE001 - analyser failure is a per-image failure
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}", "box": np.full(5, np.nan)}
    if not res.ok or res.box is None:
        return {"ok": False, "reason": res.reason or "no face found", "box": np.full(5, np.nan)}
    return {"ok": True, "reason": "", "box": box_to_array(res.box)}


def _fit_points(ctx: CellContext | None, model: Any, images: np.ndarray, keys: Sequence[str],
                boxes: Sequence[FaceBox | None], k: int, side: str) -> list[dict[str, Any]]:
    """Fit ``model`` in the given boxes (cached by content + box); failures -> NaN points + reason."""
    todo = [i for i, b in enumerate(boxes) if b is not None]
    res: list[dict[str, Any]] = [{"ok": False, "reason": "no HR face box", "points": None} for _ in boxes]

    def compute(miss: list[int]) -> list[dict[str, Any]]:
        vals = []
        for j in miss:
            i = todo[j]
            try:
                r = model.fit(images[i], boxes[i])
                if r.ok and r.points is not None:
                    vals.append({"ok": True, "reason": "", "points": np.asarray(r.points, dtype=np.float64)})
                else:
                    vals.append({"ok": False, "reason": r.reason or "landmarks failed", "points": np.zeros((0,))})
            except Exception as exc:  # noqa: BLE001
                vals.append({"ok": False, "reason": f"{type(exc).__name__}: {exc}", "points": np.zeros((0,))})
        return vals

    got = _cached_each(ctx, model.id + "/fit", [keys[i] for i in todo],
                       [list(np.round(box_to_array(boxes[i]), 6)) for i in todo], compute, side)
    for i, v in zip(todo, got):
        res[i] = {"ok": bool(v["ok"]), "reason": str(v.get("reason", "")), "points": v["points"]}
    out = []
    for r in res:
        pts = r["points"]
        dims = 3 if k == 478 else 2
        if not r["ok"] or pts is None or np.asarray(pts).ndim != 2 or np.asarray(pts).shape[0] != k:
            out.append({"ok": False, "reason": r["reason"] or f"expected {k} points",
                        "points": np.full((k, dims), np.nan)})
            continue
        out.append({"ok": True, "reason": "", "points": np.asarray(pts, dtype=np.float64)[:, :dims]})
    return out


# ------------------------------------------------------------------------------------------------
# dlib 68 + identity
# ------------------------------------------------------------------------------------------------
def dlib_hr(hr: np.ndarray, ctx: CellContext | None) -> dict[str, Any]:
    """HR dlib analysis: HOG box, 68 points fitted in it: ``boxes``, ``points`` [B,68,2], ``ok``, ``reason``."""
    keys = batch_keys(hr, ctx)

    def run() -> dict[str, Any]:
        model = get_dlib68()
        det = _cached_each(ctx, model.id + "/detect-box", keys, [None] * len(keys),
                           lambda miss: [_detect_box(model, hr[i]) for i in miss])
        boxes = [array_to_box(d["box"]) if bool(d["ok"]) else None for d in det]
        fitted = _fit_points(ctx, model, hr, keys, boxes, 68, "hr")
        ok = np.array([bool(d["ok"]) and f["ok"] for d, f in zip(det, fitted)], dtype=bool)
        reason = [("hr: " + _reason(d)) if not bool(d["ok"]) else (("hr: " + f["reason"]) if not f["ok"] else "")
                  for d, f in zip(det, fitted)]
        return {"boxes": boxes, "points": np.stack([f["points"] for f in fitted]), "ok": ok, "reason": reason}

    return _memo(ctx, "dlib:hr", keys, run)


def dlib_sr(sr: np.ndarray, hr: np.ndarray, ctx: CellContext | None) -> dict[str, Any]:
    keys = batch_keys(sr, ctx)
    hr_res = dlib_hr(hr, ctx)

    def run() -> dict[str, Any]:
        model = get_dlib68()
        fitted = _fit_points(ctx, model, sr, keys, hr_res["boxes"], 68, "sr")
        ok = hr_res["ok"] & np.array([f["ok"] for f in fitted], dtype=bool)
        reason = [hr_res["reason"][i] or ("" if fitted[i]["ok"] else "sr: " + fitted[i]["reason"])
                  for i in range(len(keys))]
        return {"points": np.stack([f["points"] for f in fitted]), "ok": ok, "reason": reason}

    return _memo(ctx, "dlib:sr:" + hashlib.sha256("".join(batch_keys(hr, ctx)).encode()).hexdigest()[:16], keys, run)


def descriptors(images: np.ndarray, boxes: Sequence[FaceBox | None], ctx: CellContext | None,
                side: str) -> dict[str, Any]:
    """Identity descriptors [B,D] (NaN rows on failure) of ``images`` inside ``boxes`` (the HR dlib boxes).

    Models with ``embed_batch(images, boxes)`` (``dlib-torch``) get all uncached faces of the batch at once
    (if that raises, the faces are retried one by one so that only the failing ones fail); others get one
    ``embed`` call per face."""
    keys = batch_keys(images, ctx)
    model = get_identity_model(identity_name(ctx))
    todo = [i for i, b in enumerate(boxes) if b is not None]

    def value(d: Any) -> dict[str, Any]:
        if d is None:
            return {"ok": False, "reason": "no descriptor", "desc": np.zeros(0)}
        return {"ok": True, "reason": "", "desc": np.asarray(d, dtype=np.float64).ravel()}

    def compute(miss: list[int]) -> list[dict[str, Any]]:
        idx = [todo[j] for j in miss]
        if len(idx) > 1 and hasattr(model, "embed_batch"):
            try:
                return [value(d) for d in model.embed_batch([images[i] for i in idx], [boxes[i] for i in idx])]
            except Exception:  # noqa: BLE001 - isolate the failing face(s) below
                pass
        vals = []
        for i in idx:
            try:
                vals.append(value(model.embed(images[i], boxes[i])))
            except Exception as exc:  # noqa: BLE001
                vals.append({"ok": False, "reason": f"{type(exc).__name__}: {exc}", "desc": np.zeros(0)})
        return vals

    def run() -> dict[str, Any]:
        got = _cached_each(ctx, model.id + "/embed", [keys[i] for i in todo],
                           [list(np.round(box_to_array(boxes[i]), 6)) for i in todo], compute, side)
        dim = int(getattr(model, "dim", 128))
        desc = np.full((len(keys), dim), np.nan)
        ok = np.zeros(len(keys), dtype=bool)
        reason = [f"{side}: no HR face box" for _ in keys]
        for i, v in zip(todo, got):
            if bool(v["ok"]) and np.asarray(v["desc"]).size == dim:
                desc[i], ok[i], reason[i] = v["desc"], True, ""
            else:
                reason[i] = f"{side}: {v.get('reason', 'no descriptor')}"
        return {"desc": desc, "ok": ok, "reason": reason}

    boxes_key = hashlib.sha256(repr([box_to_array(b).round(6).tolist() for b in boxes]).encode()).hexdigest()[:16]
    return _memo(ctx, f"identity:{side}:{boxes_key}", keys, run)


# ------------------------------------------------------------------------------------------------
# FER
# ------------------------------------------------------------------------------------------------
def fer_hr_boxes(hr: np.ndarray, ctx: CellContext | None, settings: FERInput) -> dict[str, Any]:
    """FER boxes of an HR batch (:mod:`fsrbench.analysis.fer_input`): ``boxes`` (None = whole image) and
    ``fallback`` (per image: "" when the detector box is used, else why the whole image is used / skipped).

    The box comes from the HR image only and is reused for every SR version of it.  Detector boxes are
    cached on disk with the HR analyses (dlib's HOG box is the one the landmark metrics use).
    """
    keys = batch_keys(hr, ctx)
    n = len(keys)

    def run() -> dict[str, Any]:
        if settings.box == "whole":
            return {"boxes": [None] * n, "fallback": [""] * n}
        if settings.box == "mediapipe":
            m = mesh_hr(hr, ctx)
            boxes = list(m["boxes"])
            why = ["" if b is not None else (m["reason"][i] or "hr: no MediaPipe box") for i, b in enumerate(boxes)]
        elif settings.box == "hog":
            model = get_dlib68()
            det = _cached_each(ctx, model.id + "/detect-box", keys, [None] * n,
                               lambda miss: [_detect_box(model, hr[i]) for i in miss])
            boxes = [array_to_box(d["box"]) if bool(d["ok"]) else None for d in det]
            why = ["" if b is not None else "hr: " + (_reason(d) or "no face found") for b, d in zip(boxes, det)]
        else:  # haar
            haar = get_haar()

            def detect(miss: list[int]) -> list[dict[str, Any]]:
                out = []
                for i in miss:
                    box, reason = haar.detect(hr[i])
                    out.append({"ok": box is not None, "reason": reason, "box": box_to_array(box)})
                return out

            det = _cached_each(ctx, haar.id + "/detect-box", keys, [None] * n, detect)
            boxes = [array_to_box(d["box"]) if bool(d["ok"]) else None for d in det]
            why = ["" if b is not None else "hr: " + (_reason(d) or "no face found") for b, d in zip(boxes, det)]
        boxes = [b if b is not None and b.valid() else None for b in boxes]
        why = [w or ("" if b is not None else "hr: invalid face box") for w, b in zip(why, boxes)]
        return {"boxes": boxes, "fallback": why}

    return _memo(ctx, f"fer-box:{settings.box}", keys, run)


def fer_probs(images: np.ndarray, ctx: CellContext | None, fer: Any, side: str,
              hr: np.ndarray | None = None, settings: FERInput | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """FER softmax probabilities [B,C] of ``images`` (``side`` "hr" or "sr"), per-image ``ok`` and reasons.

    The face box is the HR image's (:func:`fer_hr_boxes`, ``settings`` from the options ``fer_box``,
    ``fer_fallback``, ``fer_flip``).  Cached on disk by (image content, FER pipeline id, box) and shared
    within the batch via ``ctx.memo``.
    """
    hr = images if hr is None else hr
    settings = settings or FERInput.from_options(getattr(ctx, "options", None))
    pid = settings.pipeline_id(fer.id)
    keys = batch_keys(images, ctx)
    c = len(fer.classes)

    def run() -> tuple[np.ndarray, np.ndarray, list[str]]:
        hb = fer_hr_boxes(hr, ctx, settings)
        boxes, fallback = hb["boxes"], hb["fallback"]
        skip = [settings.fallback == "skip" and bool(f) for f in fallback]
        extras = [None if b is None else list(np.round(box_to_array(b), 6)) for b in boxes]

        def compute(miss: list[int]) -> list[dict[str, Any]]:
            try:
                p = predict(fer, images[miss], [boxes[i] for i in miss], settings.flip)
                if p.shape != (len(miss), c):
                    raise ValueError(f"FER returned shape {p.shape}, expected {(len(miss), c)}")
                return [{"ok": bool(np.all(np.isfinite(row))), "reason": "" if np.all(np.isfinite(row))
                         else "FER returned NaN", "p": row} for row in p]
            except Exception as exc:  # noqa: BLE001 - isolate the failing image(s) one at a time
                if len(miss) == 1:
                    return [{"ok": False, "reason": f"{type(exc).__name__}: {exc}", "p": np.full(c, np.nan)}]
                return [v for i in miss for v in compute([i])]

        todo = [i for i in range(len(keys)) if not skip[i]]
        got_todo = _cached_each(ctx, pid + "/proba", [keys[i] for i in todo], [extras[i] for i in todo],
                                lambda miss: compute([todo[j] for j in miss]), side)
        got: list[dict[str, Any]] = [{"ok": False, "reason": f"no FER face box ({fallback[i]}; fer_fallback=skip)",
                                      "p": np.full(c, np.nan)} for i in range(len(keys))]
        for i, v in zip(todo, got_todo):
            got[i] = v
        p = np.stack([np.asarray(v["p"], dtype=np.float64) for v in got])
        ok = np.array([bool(v["ok"]) for v in got], dtype=bool)
        reason = ["" if o else f"{side}: FER: {v.get('reason', '')}" for o, v in zip(ok, got)]
        return p, ok, reason

    hr_tag = "" if hr is images else ":" + hashlib.sha256("".join(batch_keys(hr, ctx)).encode()).hexdigest()[:16]
    return _memo(ctx, f"fer:{pid}:{side}{hr_tag}", keys, run)


def fer_fallback_notes(hr: np.ndarray, ctx: CellContext | None, settings: FERInput) -> list[str]:
    """Per HR image: "" when the FER saw the detector box, else the fallback and its reason."""
    if settings.box == "whole":
        return [""] * len(hr)
    action = "whole image" if settings.fallback == "whole" else "skipped"
    return ["" if not f else f"{action}: {f}" for f in fer_hr_boxes(hr, ctx, settings)["fallback"]]


# ------------------------------------------------------------------------------------------------
# FER-backed metrics (ECM, expression agreement)
# ------------------------------------------------------------------------------------------------
class FERMetricMixin:
    """Shared by the metrics that read FER probabilities of HR and SR: one FER model per process
    (option ``fer``, default ``mini-xception``), loaded in ``setup`` or on first use, and the FER input
    settings (options ``fer_box``, ``fer_fallback``, ``fer_flip``: :class:`FERInput`)."""

    fer_name: str = "mini-xception"
    _fer: Any = None
    options: dict[str, Any] = {}

    def check_fer(self, fer: Any) -> None:
        """Hook: raise ``Unavailable`` when this metric cannot use ``fer``."""

    def setup(self, device: Any = "cpu") -> None:
        fer = get_fer_model(self.fer_name)
        self.check_fer(fer)
        self._fer = fer

    @property
    def fer(self) -> Any:
        if self._fer is None:
            self.setup()
        return self._fer

    def fer_input(self, ctx: CellContext | None = None) -> FERInput:
        """The FER input settings: the run's options (``ctx.options``) overridden by the metric's own."""
        return FERInput.from_options(getattr(ctx, "options", None), self.options)

    def fer_card(self, ctx: CellContext | None = None) -> dict[str, Any]:
        """``fer_model`` (the pipeline id stored with results), ``fer_preprocessing`` (in words), classes."""
        settings = self.fer_input(ctx)
        return {"fer_model": settings.pipeline_id(self.fer.id), "fer_preprocessing": settings.describe(self.fer),
                "fer_classes": list(self.fer.classes)}

    def fer_pair(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> tuple[Any, ...]:
        """(p_hr, ok_hr, why_hr, p_sr, ok_sr, why_sr): FER on HR (cached) and on SR (shared per batch), both
        in the HR image's face box."""
        settings = self.fer_input(ctx)
        p_hr, ok_hr, why_hr = fer_probs(hr, ctx, self.fer, side="hr", settings=settings)
        p_sr, ok_sr, why_sr = fer_probs(sr, ctx, self.fer, side="sr", hr=hr, settings=settings)
        return p_hr, ok_hr, why_hr, p_sr, ok_sr, why_sr

    def fer_fallbacks(self, hr: np.ndarray, ctx: CellContext) -> np.ndarray:
        """Per image: "" or why the FER did not see the HR detector box (object array, a table column)."""
        return np.array(fer_fallback_notes(hr, ctx, self.fer_input(ctx)), dtype=object)


def fallback_count(table: Any, column: str) -> int:
    """Images whose FER input fell back (non-empty ``column``; 0 for tables stored before the column)."""
    if column not in getattr(table, "columns", ()):
        return 0
    v = table[column]
    return int(sum(1 for x in v if isinstance(x, str) and x.strip()))
