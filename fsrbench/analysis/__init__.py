"""Face-analysis models (landmarks, identity, FER, AU) behind the interfaces of :mod:`fsrbench.api.face`.

Getters return one instance per (name, options) per process (each model is loaded once)::

    from fsrbench.analysis import get_landmarks, get_identity, get_fer
    mesh = get_landmarks("mediapipe478")          # MediaPipe 478 (detect -> HR box, fit(img, box))
    dl = get_landmarks("dlib68")                   # dlib 68 points
    ident = get_identity()                         # 128-D descriptor, embed(img, box) ("dlib-torch")
    fer = get_fer("mini-xception")                 # predict_proba(faces) -> [N, 7]

Names are looked up in :mod:`fsrbench.registry` (entry-point groups ``fsrbench.landmarks``,
``fsrbench.identity``, ``fsrbench.fer``, ``fsrbench.au``), so third-party plugins work the same way.
These getters are fsrbench's only way to a face model: the metrics (:func:`require`, which turns an unknown
or broken plugin into :class:`~fsrbench.api.Unavailable` so a run skips the metric), the priors, the grids
and ``fsrbench analyze`` all share the same instances.
Missing weights raise :class:`fsrbench.api.Unavailable` (with the pip command that fixes it) when a model
is first requested; a face that cannot be analysed gives ``ok=False`` + ``reason`` (or ``None`` / NaN),
never an exception.

:func:`detect_cached` / :func:`fit_cached` / :func:`fer_cached` wrap the models with the on-disk analysis
cache (:class:`fsrbench.cache.Cache`), keyed by (model id, image content hash, box).
"""
from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from fsrbench.api.face import AUEstimator, FaceBox, FERModel, IdentityModel, LandmarkModel, LandmarkResult
from fsrbench.cache import image_key
from fsrbench.errors import PluginLoadError, RegistryError, Unavailable
from fsrbench.registry import instantiate, registry

__all__ = [
    "AUEstimator", "FaceBox", "FERModel", "IdentityModel", "LandmarkModel", "LandmarkResult",
    "get_landmarks", "get_identity", "DEFAULT_IDENTITY", "get_fer", "get_au", "require", "clear_model_cache",
    "detect_cached", "fit_cached", "fer_cached", "embed_cached", "detect_box_cached",
]

_INSTANCES: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


# Built-in models, as declared in pyproject.toml's entry points. Registered here too (only when the entry
# point is missing, e.g. a source checkout whose installed metadata is stale) so the getters always work.
BUILTIN: dict[str, dict[str, str]] = {
    "landmarks": {"mediapipe478": "fsrbench.analysis.mediapipe_mesh:MediaPipeMesh",
                  "dlib68": "fsrbench.analysis.dlib_models:Dlib68"},
    "identity": {"dlib": "fsrbench.analysis.dlib_models:DlibIdentity",
                 "dlib-torch": "fsrbench.analysis.dlib_resnet:DlibIdentityTorch"},
    "fer": {"mini-xception": "fsrbench.analysis.fer_minixception:MiniXception",
            "ddamfn": "fsrbench.analysis.fer_ddamfn:DDAMFN"},
    "au": {"geometric": "fsrbench.analysis.au_geometric:GeometricAU"},
}


def ensure_builtins() -> None:
    """Register the built-in analysis models whose entry points are not installed (idempotent)."""
    for kind, entries in BUILTIN.items():
        reg = registry(kind)
        for name, target in entries.items():
            if name not in reg:
                reg.register(name, target, "fsrbench built-in (entry point not installed)")


def _get(kind: str, name: str, options: dict[str, Any]) -> Any:
    key = (kind, name, json.dumps(options, sort_keys=True, default=str))
    with _LOCK:
        inst = _INSTANCES.get(key)
        if inst is None:
            ensure_builtins()
            factory = registry(kind).get(name)
            inst = instantiate(factory, **options)
            _INSTANCES[key] = inst
        return inst


def get_landmarks(name: str = "mediapipe478", **options: Any) -> Any:
    """Landmark model ``name`` (``mediapipe478``, ``dlib68`` or a plugin), one instance per process."""
    return _get("landmarks", name, options)


DEFAULT_IDENTITY = "dlib-torch"  # dlib's descriptor with the network in PyTorch (batched); "dlib" = dlib itself


def get_identity(name: str = DEFAULT_IDENTITY, **options: Any) -> Any:
    """Identity model ``name`` (``dlib-torch``, ``dlib`` or a plugin), one instance per process."""
    return _get("identity", name, options)


def get_fer(name: str = "mini-xception", **options: Any) -> Any:
    """FER plugin ``name`` (``mini-xception`` or a plugin), one instance per (name, options) per process."""
    return _get("fer", name, options)


def get_au(name: str = "geometric", **options: Any) -> Any:
    """AU estimator ``name`` (``geometric`` or a plugin), one instance per process."""
    return _get("au", name, options)


def require(kind: str, name: str, **options: Any) -> Any:
    """The face model ``name`` of registry ``kind`` (as the getters above), or :class:`Unavailable` when it is
    unknown or fails to import -- what a metric raises from ``setup()`` to be skipped with the reason."""
    try:
        return _get(kind, name, options)
    except (PluginLoadError, RegistryError) as exc:
        raise Unavailable(f"{kind} model {name!r} cannot be loaded: {exc}") from exc


def clear_model_cache() -> None:
    """Forget the loaded instances (tests)."""
    with _LOCK:
        _INSTANCES.clear()


# ------------------------------------------------------------------------------------------------
# cache-aware wrappers (fsrbench.cache)
# ------------------------------------------------------------------------------------------------
def _img_key(image: np.ndarray) -> str:
    return image_key(np.asarray(image))


def _lm_to_value(r: LandmarkResult) -> dict[str, Any]:
    v: dict[str, Any] = {"ok": bool(r.ok), "reason": r.reason,
                         "box": list(r.box.as_tuple()) if r.box is not None else None,
                         "extra": {k: (float(x) if isinstance(x, (float, np.floating)) else x)
                                   for k, x in r.extra.items()}}
    if r.points is not None:
        v["points"] = np.asarray(r.points, dtype=np.float64)
    return v


def _lm_from_value(v: dict[str, Any]) -> LandmarkResult:
    box = FaceBox(*[float(x) for x in v["box"]]) if v.get("box") is not None else None
    pts = v.get("points")
    return LandmarkResult(points=None if pts is None else np.asarray(pts), box=box, ok=bool(v["ok"]),
                          reason=str(v.get("reason", "")), extra=dict(v.get("extra", {})))


def detect_cached(model: Any, image: np.ndarray, cache: Any = None) -> LandmarkResult:
    """``model.detect(image)`` through ``cache`` (None = no cache)."""
    if cache is None:
        return model.detect(image)
    key = cache.make_key(_img_key(image), "detect")
    hit = cache.get(model.id, key)
    if hit is not None:
        return _lm_from_value(hit)
    r = model.detect(image)
    cache.put(model.id, key, _lm_to_value(r))
    return r


def fit_cached(model: Any, image: np.ndarray, box: FaceBox, cache: Any = None) -> LandmarkResult:
    """``model.fit(image, box)`` through ``cache`` (key includes the box)."""
    if cache is None:
        return model.fit(image, box)
    key = cache.make_key(_img_key(image), ["fit", list(box.as_tuple()) if box is not None else None])
    hit = cache.get(model.id, key)
    if hit is not None:
        return _lm_from_value(hit)
    r = model.fit(image, box)
    cache.put(model.id, key, _lm_to_value(r))
    return r


def detect_box_cached(model: Any, image: np.ndarray, cache: Any = None) -> FaceBox | None:
    """``model.detect_box(image)`` (identity models' own face detector) through ``cache``."""
    if cache is None:
        return model.detect_box(image)
    key = cache.make_key(_img_key(image), "detect_box")
    hit = cache.get(model.id, key)
    if hit is not None:
        b = hit.get("box")
        return None if b is None else FaceBox(*[float(x) for x in b])
    box = model.detect_box(image)
    cache.put(model.id, key, {"box": None if box is None else list(box.as_tuple())})
    return box


def embed_cached(model: Any, image: np.ndarray, box: FaceBox, cache: Any = None) -> np.ndarray | None:
    """``model.embed(image, box)`` through ``cache``."""
    if cache is None:
        return model.embed(image, box)
    key = cache.make_key(_img_key(image), ["embed", list(box.as_tuple()) if box is not None else None])
    hit = cache.get(model.id, key)
    if hit is not None:
        return None if not hit.get("ok") else np.asarray(hit["vector"])
    v = model.embed(image, box)
    cache.put(model.id, key, {"ok": v is not None, **({"vector": np.asarray(v)} if v is not None else {})})
    return v


def fer_cached(model: Any, images: np.ndarray, boxes: list[FaceBox | None] | None = None,
               cache: Any = None) -> np.ndarray:
    """``model.predict_proba`` per image through ``cache``; uncached images are predicted in one batch."""
    arr = np.asarray(images)
    if cache is None:
        return model.predict_proba(arr, boxes)
    n = len(arr)
    out = np.full((n, len(model.classes)), np.nan)
    keys = [cache.make_key(_img_key(arr[i]), ["fer", None if boxes is None or boxes[i] is None
                                              else list(boxes[i].as_tuple())]) for i in range(n)]
    todo = []
    for i, k in enumerate(keys):
        hit = cache.get(model.id, k)
        if hit is not None:
            out[i] = np.asarray(hit["proba"], dtype=np.float64)
        else:
            todo.append(i)
    if todo:
        p = model.predict_proba(arr[todo], None if boxes is None else [boxes[i] for i in todo])
        for j, i in enumerate(todo):
            out[i] = p[j]
            cache.put(model.id, keys[i], {"proba": np.asarray(p[j], dtype=np.float64)})
    return out
