"""dlib's face-recognition ResNet (the 128-D identity descriptor) in PyTorch, batched on CPU or GPU.

The network is rebuilt from ``dlib_face_recognition_resnet_model_v1.dat`` (``face-recognition-models``,
sha256-pinned) by our own reader of dlib's format (:mod:`fsrbench.analysis.dlib_dnn`), layer for layer as
dlib's ``anet_type`` runs it:

* input: a 150x150 RGB chip, each channel mapped to ``(value - mean) / 256`` with the means stored in the file;
* ``con`` = cross-correlation with bias, dlib's default padding (``size // 2`` at stride 1, none at stride 2);
  ``affine`` = per-channel ``x * gamma + beta`` (folded into the preceding convolution: same values up to
  float32 rounding);
* ``max_pool`` 3x3 / 2 and ``avg_pool`` 2x2 / 2 without padding; ``avg_pool_everything`` = spatial mean;
* ``add_prev`` adds two tensors of different sizes the way dlib's ``tt::add`` does: the output has the larger
  size in every dimension and each input is zero-padded at its end (channels and the bottom/right border —
  the down-sampling blocks of ``alevel1``/``alevel0`` add a 3x3 to a 4x4 map and a 1x1 to a 2x2 map);
* ``fc_no_bias`` 256 -> 128; the descriptor is that output (no normalisation), as float64.

:class:`DlibIdentityTorch` is the identity model around it (registry name ``dlib-torch``): the same HOG box,
68-point shape and 150x150 chip as ``dlib.face_recognition_model_v1.compute_face_descriptor`` with
``num_jitters`` 0 or 1 (dlib's no-jitter path) — the chip is made by dlib itself (``dlib.get_face_chip``: the
transform and interpolation dlib uses, so the chip is bit-identical) and only the network runs in PyTorch.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np

from fsrbench.api.face import FaceBox, face_image
from fsrbench.analysis.dlib_dnn import Op, read_face_resnet
from fsrbench.analysis.dlib_models import _HOG, _rect, _valid_box

CHIP_SIZE = 150


def _add_zero_padded(a: Any, b: Any) -> Any:
    """``a + b`` with dlib's ``tt::add`` semantics for different shapes (zero padding at the end of each dim)."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
    out = a.new_zeros(shape)
    out[:a.shape[0], :a.shape[1], :a.shape[2], :a.shape[3]] += a
    out[:b.shape[0], :b.shape[1], :b.shape[2], :b.shape[3]] += b
    return out


def build_face_resnet(ops: list[Op], fold_affine: bool = True) -> Any:
    """A ``torch.nn.Module`` running ``ops`` (from :func:`~fsrbench.analysis.dlib_dnn.read_face_resnet`).

    Input: uint8 chips [B,150,150,3] (RGB) as a tensor; output: float32 descriptors [B,128]."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class FaceResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if not ops or ops[0].kind != "input":
                raise ValueError("the first operation must be the input layer")
            self.size = int(ops[0].args["size"])
            self.register_buffer("mean", torch.tensor(ops[0].args["mean"], dtype=torch.float32).view(1, 3, 1, 1))
            self.steps: list[tuple[Any, ...]] = []
            i, n_conv = 1, 0
            while i < len(ops):
                op = ops[i]
                if op.kind == "con":
                    w = torch.from_numpy(op.params["weight"].copy())
                    b = torch.from_numpy(op.params["bias"].copy())
                    if fold_affine and i + 1 < len(ops) and ops[i + 1].kind == "affine":
                        g = torch.from_numpy(ops[i + 1].params["gamma"].copy())
                        beta = torch.from_numpy(ops[i + 1].params["beta"].copy())
                        w = w * g.view(-1, 1, 1, 1)
                        b = b * g + beta
                        i += 1
                    self.register_buffer(f"w{n_conv}", w)
                    self.register_buffer(f"b{n_conv}", b)
                    self.steps.append(("con", n_conv, int(op.args["stride"]), int(op.args["padding"])))
                    n_conv += 1
                elif op.kind == "affine":
                    k = len(self.steps)
                    self.register_buffer(f"g{k}", torch.from_numpy(op.params["gamma"].copy()).view(1, -1, 1, 1))
                    self.register_buffer(f"beta{k}", torch.from_numpy(op.params["beta"].copy()).view(1, -1, 1, 1))
                    self.steps.append(("affine", k))
                elif op.kind == "fc":
                    self.register_buffer("fc", torch.from_numpy(op.params["weight"].copy()))
                    self.steps.append(("fc",))
                elif op.kind in ("max_pool", "avg_pool"):
                    self.steps.append((op.kind, int(op.args["size"]), int(op.args["stride"]),
                                       int(op.args["padding"])))
                elif op.kind in ("tag", "skip"):
                    self.steps.append((op.kind, int(op.args["id"])))
                elif op.kind == "add_prev":
                    self.steps.append(("add_prev", int(op.args["tag"])))
                elif op.kind == "relu":
                    self.steps.append(("relu",))
                else:
                    raise ValueError(f"unsupported operation {op.kind}")
                i += 1

        def forward(self, chips: Any) -> Any:
            x = chips.permute(0, 3, 1, 2).to(torch.float32)
            x = ((x - self.mean) / 256.0).contiguous(memory_format=torch.channels_last)
            tags: dict[int, Any] = {}
            for st in self.steps:
                kind = st[0]
                if kind == "con":
                    x = F.conv2d(x, getattr(self, f"w{st[1]}"), getattr(self, f"b{st[1]}"), stride=st[2],
                                 padding=st[3])
                elif kind == "relu":
                    x = F.relu(x)
                elif kind == "affine":
                    x = x * getattr(self, f"g{st[1]}") + getattr(self, f"beta{st[1]}")
                elif kind == "tag":
                    tags[st[1]] = x
                elif kind == "skip":
                    x = tags[st[1]]
                elif kind == "add_prev":
                    x = _add_zero_padded(x, tags[st[1]])
                elif kind == "max_pool":
                    x = F.max_pool2d(x, st[1], st[2], st[3])
                elif kind == "avg_pool":
                    x = x.mean(dim=(2, 3), keepdim=True) if st[1] == 0 else F.avg_pool2d(x, st[1], st[2], st[3])
                elif kind == "fc":
                    x = x.reshape(x.shape[0], -1) @ self.fc
            return x

    net = FaceResNet().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@contextlib.contextmanager
def _no_tf32(device: Any) -> Iterator[None]:
    """On CUDA, keep convolutions and matrix products in IEEE float32 for the duration (TF32, cuDNN's default for
    convolutions, would move descriptors by ~1e-3); the previous settings are restored afterwards."""
    import torch

    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        yield
        return
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


class DlibIdentityTorch:
    """dlib's 128-D face descriptor with the network in PyTorch (``IdentityModel``; registry name ``dlib-torch``).

    Same inputs, options and outputs as :class:`fsrbench.analysis.dlib_models.DlibIdentity` (HOG box for
    :meth:`detect_box`, 68-point shape in the given box, dlib's 150x150 chip with ``padding``), plus
    :meth:`embed_batch`, which runs the network once for a whole batch. Options: ``upsample`` (1),
    ``num_jitters`` (0; dlib treats 0 and 1 alike — more jitters draw random crops and only the ``dlib``
    model does them), ``padding`` (0.25), ``min_size`` (8 px), ``device`` (``cpu``; ``cuda``, ``cuda:N``),
    ``batch_size`` (64 chips per forward pass).

    Descriptors agree with dlib's to < 1e-6 (tests/analysis/test_identity_port.py), so the model shares dlib's model id
    (and with it the analysis cache).
    """

    name = "dlib-torch"
    description = ("dlib ResNet 128-D face descriptor, network rebuilt in PyTorch (batched, CPU/GPU; matches dlib "
                   "to 1e-6); same person: distance < 0.6")
    dim = 128

    def __init__(self, upsample: int = 1, num_jitters: int = 0, padding: float = 0.25, min_size: int = 8,
                 device: Any = "cpu", batch_size: int = 64, **_: Any) -> None:
        import torch

        from fsrbench.analysis import carriers

        if int(num_jitters) > 1:
            raise ValueError("num_jitters > 1 (random jitter) is only available with the 'dlib' identity model")
        rec_path = carriers.locate("dlib-face-recognition")
        shape_path = carriers.locate("dlib-shape68")
        self.hog = _HOG(upsample)
        dlib = self.hog.dlib
        self.predictor = dlib.shape_predictor(str(shape_path))
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self.min_size = int(min_size)
        self.batch_size = max(1, int(batch_size))
        self.device = torch.device(device)
        self.net = build_face_resnet(read_face_resnet(rec_path)).to(self.device)
        # the id of the dlib model it reproduces (descriptors within 1e-6): both share the analysis cache
        self.id = (f"dlib-resnet128-{dlib.__version__}-{carriers.sha256_file(rec_path)[:12]}"
                   f"-s68-j{self.num_jitters}-p{self.padding:g}")

    def to_device(self, device: Any) -> "DlibIdentityTorch":
        """Run the network on ``device`` from now on (chips are always made on the CPU by dlib)."""
        import torch

        self.device = torch.device(device)
        self.net = self.net.to(self.device)
        return self

    def detect_box(self, image: np.ndarray) -> FaceBox | None:
        """HOG face box of an (HR) image, or None."""
        img, _ = face_image(image, self.min_size)
        return None if img is None else self.hog(img)[0]

    def chip(self, image: np.ndarray, box: FaceBox | None) -> np.ndarray | None:
        """dlib's aligned 150x150 chip (uint8 RGB) of the face in ``box``, or None."""
        img, _ = face_image(image, self.min_size)
        if img is None or not _valid_box(box):
            return None
        shape = self.predictor(img, _rect(self.hog.dlib, box))  # type: ignore[arg-type]
        return self.hog.dlib.get_face_chip(img, shape, CHIP_SIZE, self.padding)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors [N,128] (float64) of dlib chips [N,150,150,3] (uint8)."""
        import torch

        chips = np.asarray(chips, dtype=np.uint8)
        out = np.empty((len(chips), self.dim), dtype=np.float64)
        with torch.inference_mode(), _no_tf32(self.device):
            for s in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(chips[s:s + self.batch_size])).to(self.device)
                out[s:s + len(x)] = self.net(x).double().cpu().numpy()
        return out

    def embed_batch(self, images: Sequence[np.ndarray], boxes: Sequence[FaceBox | None]) -> list[np.ndarray | None]:
        """:meth:`embed` of every (image, box) pair, with one network pass per ``batch_size`` faces."""
        chips = [self.chip(im, b) for im, b in zip(images, boxes)]
        todo = [i for i, c in enumerate(chips) if c is not None]
        out: list[np.ndarray | None] = [None] * len(chips)
        if todo:
            desc = self.descriptors(np.stack([chips[i] for i in todo]))  # type: ignore[misc]
            for j, i in enumerate(todo):
                out[i] = desc[j] if np.all(np.isfinite(desc[j])) else None
        return out

    def embed(self, image: np.ndarray, box: FaceBox) -> np.ndarray | None:
        return self.embed_batch([image], [box])[0]
