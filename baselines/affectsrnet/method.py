"""AffectSRNet as an fsrbench TrainableMethod (METHODS.md §7): model, four-term loss, landmark prior.

Input: the LR image (``input = "lr"``) and the test-time prior ``landmarks478_lr`` — MediaPipe's 478
points of the (bicubic-upsampled) LR image as float [B,478,3] in **pixels of the hr_size (128) frame**
(x·W, y·H, z·W as ``fsrbench.analysis.mediapipe_mesh`` returns them). They are normalised here by
dividing by hr_size (MediaPipe's own units, METHODS.md §7.5). A missing prior, or a sample whose row holds
NaN/inf (no face found), falls back to the training-set mean shape (``mean_landmarks478.json``) and is
flagged: ``method.last_landmark_fallback`` (bool per image of the last batch) and the
``landmark_fallback`` entry of the loss log. ``landmark_fallback: error`` in the config refuses instead.

Training additionally uses ``landmarks478_hr`` (same layout) for the node-embedding loss. Variants
(``variant`` key, Table III): ``rrdb``, ``rrdb_in``, ``full``; also registered as their own methods
``affectsrnet-rrdb`` and ``affectsrnet-rrdb-in``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fsrbench.train import unwrap
from fsrbench_baselines.common import BaselineMethod

from .losses import colour_histogram_loss, l1, masked_node_l2, style_loss
from .model import AffectSRNet, build_affectsrnet, load_esrgan

_LANDMARK_KEYS = ("landmark_prior", "landmark_units", "landmark_fallback")
MEAN_SHAPE_FILE = Path(__file__).resolve().parent / "mean_landmarks478.json"
_MEAN_SHAPE: torch.Tensor | None = None


def mean_shape() -> torch.Tensor:
    """Mean normalised MediaPipe 478-point shape [478, 3] of HR training faces (see tools/make_mean_shape.py)."""
    global _MEAN_SHAPE
    if _MEAN_SHAPE is None:
        doc = json.loads(MEAN_SHAPE_FILE.read_text())
        _MEAN_SHAPE = torch.tensor(doc["points"], dtype=torch.float32)
        if tuple(_MEAN_SHAPE.shape) != (478, 3):
            raise ValueError(f"{MEAN_SHAPE_FILE}: expected 478x3 points, got {tuple(_MEAN_SHAPE.shape)}")
    return _MEAN_SHAPE


def normalized_landmarks(priors: Mapping[str, Any], key: str, batch_size: int, frame: float,
                         device: Any, fallback: str = "mean_shape",
                         units: str = "pixels") -> tuple[torch.Tensor, torch.Tensor]:
    """``priors[key]`` [B,478,3] → (normalised landmarks [B,478,3] float32, fallback flags [B] bool).

    ``units="pixels"``: divide by ``frame`` (the hr_size); ``"normalized"``: use as is. Rows with a
    non-finite value, or every row when the prior is missing, get the mean shape (``fallback="mean_shape"``)
    or raise ValueError (``fallback="error"``).
    """
    if key in priors and priors[key] is not None:
        lm = torch.as_tensor(priors[key], dtype=torch.float32, device=device)
        if lm.dim() != 3 or lm.shape[0] != batch_size or lm.shape[1] != 478 or lm.shape[2] < 3:
            raise ValueError(f"prior {key!r} must be [B,478,3] with B={batch_size}, got {tuple(lm.shape)}")
        lm = lm[..., :3]
        if units == "pixels":
            lm = lm / float(frame)
        elif units != "normalized":
            raise ValueError(f"landmark_units must be 'pixels' or 'normalized', not {units!r}")
        bad = ~torch.isfinite(lm).all(-1).all(-1)
    else:
        lm = torch.zeros(batch_size, 478, 3, device=device)
        bad = torch.ones(batch_size, dtype=torch.bool, device=device)
    if bool(bad.any()):
        if fallback == "error":
            raise ValueError(f"AffectSRNet: landmarks {key!r} missing for {int(bad.sum())} image(s) "
                             f"(set landmark_fallback: mean_shape to use the mean face instead)")
        if fallback != "mean_shape":
            raise ValueError(f"landmark_fallback must be 'mean_shape' or 'error', not {fallback!r}")
        lm = torch.where(bad.view(-1, 1, 1), mean_shape().to(device), lm)
    return lm, bad


def _init_rdb_convs(model: nn.Module, scale: float) -> None:
    """ESRGAN init: kaiming-normal (fan_in) × ``scale`` for the convs inside the RRDBs, zero bias."""
    for name, m in model.named_modules():
        if name.startswith("RRDB_trunk") and isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            m.weight.data.mul_(scale)
            nn.init.zeros_(m.bias)


class AffectSRNetMethod(BaselineMethod):
    """AffectSRNet (Rizvi et al.): RRDB + InstanceNorm backbone, landmark GCN, three MSAF fusions."""

    name = "affectsrnet"
    scales = (4, 8)
    input = "lr"
    priors = ("landmarks478_lr",)
    train_priors = ("landmarks478_lr", "landmarks478_hr")
    config_file = "configs/affectsrnet.yaml"
    description = ("AffectSRNet (Rizvi et al.): 8 RRDB + InstanceNorm, GCN over MediaPipe-478 landmarks, "
                   "3 MSAF fusions; L1 + 20 hist + 50 style + 0.1 node-L2")
    variant_defaults: dict[str, Any] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.last_landmark_fallback: torch.Tensor | None = None

    # -- config ----------------------------------------------------------------------------------
    def _model_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = dict(config)
        cfg.update(self.variant_defaults)
        cfg.update(self.options)
        return cfg

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"{self.name} supports scales {self.scales}, not {scale}")
        cfg = self._model_config(config)
        model = build_affectsrnet(scale, cfg)
        # the landmark settings travel with the model, so evaluation (rebuilt from the run's config) uses them
        model.landmark_config = {k: cfg[k] for k in _LANDMARK_KEYS if k in cfg}  # type: ignore[assignment]
        if cfg.get("init_scale") is not None:
            _init_rdb_convs(model, float(cfg["init_scale"]))
        path = cfg.get("esrgan_init")
        if path:
            # A missing file is an error when training starts (training_loss), not here: evaluation rebuilds
            # the model from the training config and then loads the trained weights anyway.
            if Path(path).is_file():
                from fsrbench.analysis.carriers import sha256_file

                rep = model.esrgan_report = load_esrgan(model, path)  # type: ignore[assignment]
                # recorded by the training engine in run.json ("init")
                model.init_report = {"esrgan_init": str(path), "sha256": sha256_file(path),  # type: ignore[assignment]
                                     "loaded_tensors": rep["loaded"], "skipped": len(rep["skipped"]),
                                     "kept_random": len(rep["kept_random"])}
            else:
                model.esrgan_report = {"missing": str(path)}  # type: ignore[assignment]
        return model

    # -- landmarks -------------------------------------------------------------------------------
    def _landmarks(self, model: AffectSRNet, priors: Mapping[str, Any], key: str, batch_size: int, frame: int,
                   cfg: Mapping[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not getattr(model, "use_graph", False):
            return None, None
        return normalized_landmarks(priors, key, batch_size, frame, model.conv_first.weight.device,
                                    str(cfg.get("landmark_fallback", "mean_shape")),
                                    str(cfg.get("landmark_units", "pixels")))

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        bare = unwrap(model)
        cfg = self._model_config(getattr(bare, "landmark_config", None) or {})
        lm, fb = self._landmarks(bare, batch.priors, str(cfg.get("landmark_prior", "landmarks478_lr")),
                                 batch.lr.shape[0], int(batch.hr_size), cfg)
        self.last_landmark_fallback = fb
        return model(batch.lr, lm)

    # -- loss ------------------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self._model_config(config)
        bare = unwrap(model)  # DistributedDataParallel wraps the model under DDP
        missing = getattr(bare, "esrgan_report", {}).get("missing")
        if missing:
            raise FileNotFoundError(f"esrgan_init: ESRGAN checkpoint {missing} not found (give a local "
                                    f"RRDB_ESRGAN_x4.pth / RRDB_PSNR_x4.pth / .safetensors, or set esrgan_init: null)")
        hr = batch.hr
        b, frame = hr.shape[0], int(hr.shape[-1])
        lm, fb = self._landmarks(bare, batch.priors, str(cfg.get("landmark_prior", "landmarks478_lr")), b, frame, cfg)
        w_node = float(cfg.get("node_weight", 0.1))
        key_hr = str(cfg.get("landmark_prior_hr", "landmarks478_hr"))
        target = str(cfg.get("node_target", "shared"))
        if target not in ("shared", "stopgrad"):
            raise ValueError(f"node_target must be 'shared' or 'stopgrad', not {target!r}")
        lm_hr = fb_hr = None
        if w_node and lm is not None and key_hr in batch.priors:
            lm_hr, fb_hr = normalized_landmarks(batch.priors, key_hr, b, frame, hr.device, "mean_shape",
                                                str(cfg.get("landmark_units", "pixels")))
        # the HR-landmark graph: with gradient through the one GCN ("shared", default) or as a stop-gradient
        # target (METHODS.md §7.6 CHOICE; diverges in practice, see the config); computed by the same forward
        out = model(batch.lr, lm, return_nodes=True, ref_landmarks=lm_hr, ref_grad=target == "shared")
        sr, nodes = out[0], out[1]
        z_hr = out[2] if lm_hr is not None else None
        log: dict[str, float] = {}
        w_pix = float(cfg.get("pix_weight", 1.0))
        l_pix = l1(sr, hr)
        loss = w_pix * l_pix
        log["l1"] = l_pix.detach()
        w_hist = float(cfg.get("hist_weight", 20.0))
        if w_hist:
            if str(cfg.get("hist", "rgb")) != "rgb":
                raise ValueError("hist: only 'rgb' (soft colour histogram) is implemented")
            sigma = cfg.get("hist_sigma")
            lh = colour_histogram_loss(sr, hr, int(cfg.get("hist_bins", 64)), None if sigma is None else float(sigma))
            loss = loss + w_hist * lh
            log["hist"] = lh.detach()
        w_style = float(cfg.get("style_weight", 50.0))
        if w_style:
            ls = style_loss(sr, hr, tuple(cfg.get("style_layers", ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))),
                            str(cfg.get("style_reduction", "mean")))
            loss = loss + w_style * ls
            log["style"] = ls.detach()
        if w_node and nodes is not None and z_hr is not None:
            ln = masked_node_l2(nodes, z_hr, ~fb_hr & ~fb, str(cfg.get("node_reduction", "sum")),
                                detach_ref=target == "stopgrad")
            loss = loss + w_node * ln
            log["node_l2"] = ln.detach()
        if fb is not None:
            log["landmark_fallback"] = fb.float().mean()
        log["total"] = loss.detach()
        return loss, log

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["variant"] = self._model_config({"variant": "full"})["variant"]
        return out


class AffectSRNetRRDBMethod(AffectSRNetMethod):
    """Ablation `rrdb` (Table III row 1): 8-block RRDB backbone only (ESRGAN-PSNR-like), no landmarks."""

    name = "affectsrnet-rrdb"
    in_all = False  # an ablation: run it by name
    priors = ()
    train_priors = ()
    description = "AffectSRNet ablation 'rrdb': 8 RRDB, no InstanceNorm, no GCN/MSAF (same loss)"
    variant_defaults = {"variant": "rrdb"}


class AffectSRNetRRDBINMethod(AffectSRNetMethod):
    """Ablation `rrdb_in` (Table III row 2): RRDB + InstanceNorm, no landmarks."""

    name = "affectsrnet-rrdb-in"
    in_all = False  # an ablation: run it by name
    priors = ()
    train_priors = ()
    description = "AffectSRNet ablation 'rrdb_in': 8 RRDB + InstanceNorm, no GCN/MSAF (same loss)"
    variant_defaults = {"variant": "rrdb_in"}
