"""MPENet network (METHODS.md §8.1-8.2): recurrent feedback face SR with alignment and AU branches.

Input: LR tensor [B,3,s,s] in [0,1] (s = 16 for ×8, 32 for ×4). Output of ``forward``: a dict with

* ``sr``        – list of the three SR images [B,3,128,128] (steps t = 1, 2, 3; in [0,1] up to clamping),
* ``heatmaps``  – 68 landmark heatmaps [B,68,32,32] predicted from SR¹ (None without alignment branch),
* ``au_logits`` – [B,n_au] AU logits predicted from SR² by the ResNet-18 (None without AU branch),
* ``au_maps``   – the AU feature maps embedded at t = 3 [B,n_au,32,32] (None without AU branch).

Layout (shapes for ×8; ×4 uses the §5.3 SRFBN feature extractor and ×4 projections):
SFE conv3×3 3→192 + PReLU + PixelShuffle(2) → 48×32²; PERB fuse per step (t=1: 1×1 48→48; t=2:
1×1 (48+48+68)→48; t=3: 1×1 (48+48+68+n_au)→48; each followed by a 3×3 48→48) → shared SRFBN
projection core (G=6, 48 ch, without its input compression) → RECB (deconv 8/4/2 + PReLU, conv3×3
48→3) + bilinear global skip of the LR.  Images are mean-shifted by (0.509, 0.424, 0.378) inside (DIC).

The modules the engine trains are :class:`MPENetModel` (generator + running AU occurrence counts) and
:class:`MPEGANModel` (+ the SRGAN discriminator); :func:`build_generator` builds and initialises the generator.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench_baselines.common import (Hourglass, PreActBottleneck, SRFBNProjectionCore, conv_prelu,
                                       deconv_prelu)
from fsrbench_baselines.mpenet.au_attention import au_attention_maps, heatmap_argmax
from fsrbench_baselines.mpenet.discriminator import SRGANDiscriminator

DIC_MEAN = (0.509, 0.424, 0.378)


def _fuse(c_in: int, features: int, act: bool) -> nn.Sequential:
    """PERB fusion: conv1×1 c_in→F and conv3×3 F→F, each optionally followed by PReLU(0.2)."""
    return nn.Sequential(conv_prelu(c_in, features, 1, act=act), conv_prelu(features, features, 3, act=act))


class AlignmentBranch(nn.Module):
    """conv3×3/2 3→64 + ReLU; residual 64→128; maxpool 2; residual 128; residual 128;
    ``stacks`` hourglasses (depth ``depth``, BN pre-activation bottlenecks); conv1×1 128→K.

    128² image → K heatmaps at 32² (1,581,124 parameters for the defaults, K = 68)."""

    def __init__(self, keypoints: int = 68, channels: int = 128, stacks: int = 2, depth: int = 4,
                 head_init_std: float = 1e-3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1), nn.ReLU(inplace=True),
            PreActBottleneck(64, channels), nn.MaxPool2d(2, 2),
            PreActBottleneck(channels, channels), PreActBottleneck(channels, channels))
        self.hourglasses = nn.Sequential(*[Hourglass(depth, channels, PreActBottleneck, "nearest")
                                           for _ in range(stacks)])
        self.head = nn.Conv2d(channels, keypoints, 1)
        if head_init_std > 0:  # [CHOICE] near-zero initial heatmaps (un-normalised hourglass outputs are ~10)
            nn.init.normal_(self.head.weight, 0.0, head_init_std)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hourglasses(self.stem(x)))


def resnet18_width(width: int) -> nn.Module:
    """torchvision's ResNet-18 with base width ``width`` instead of 64 (stages width, 2w, 4w, 8w): the same
    layers, module names and forward; parameters scale with width² (64: 11.2 M, 16: 0.70 M)."""
    import torchvision
    from torchvision.models.resnet import BasicBlock, ResNet

    if width == 64:
        return torchvision.models.resnet18(weights=None)

    class _Narrow(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001 - torchvision's
            if planes == 64:  # layer1: its input is the stem's `width` channels
                self.inplanes = width
            return super()._make_layer(block, planes * width // 64, blocks, stride, dilate)

    net = _Narrow(BasicBlock, [2, 2, 2, 2])
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    return net


class AUBranch(nn.Module):
    """torchvision ResNet-18 (random init, no downloads; base width ``width``) with an n_au-way FC; logits."""

    def __init__(self, n_au: int, input_norm: str = "imagenet", width: int = 64) -> None:
        super().__init__()
        if input_norm not in ("imagenet", "none"):
            raise ValueError(f"au_input_norm must be 'imagenet' or 'none', not {input_norm!r}")
        self.net = resnet18_width(int(width))
        self.net.fc = nn.Linear(8 * int(width), n_au)
        self.input_norm = input_norm
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, img01: torch.Tensor) -> torch.Tensor:
        x = (img01 - self.mean) / self.std if self.input_norm == "imagenet" else img01
        return self.net(x)


class MPENet(nn.Module):
    """The MPENet generator. ``scale`` ∈ {4, 8}; ablation switches follow the paper's Table 4."""

    def __init__(self, scale: int = 8, n_au: int = 12, aus: Sequence[int] | None = None,
                 features: int = 48, groups: int = 6, steps: int = 3, keypoints: int = 68,
                 fuse_act: bool = True, landmark_branch: bool = True, au_branch: bool = True,
                 au_attention: bool = True, prior_landmarks_at_t3: bool = True,
                 detach_prior: bool = False, heatmap_floor: float = 0.05, prior_clamp: bool = True,
                 align_channels: int = 128, align_stacks: int = 2, align_depth: int = 4,
                 align_head_init_std: float = 1e-3,
                 au_input_norm: str = "imagenet", attention_ratio: float = 0.14,
                 attention_fill: float = 0.56, aux_grad_to_sr: bool = True, au_width: int = 64) -> None:
        super().__init__()
        if scale not in (4, 8):
            raise ValueError(f"MPENet supports ×8 (paper) and ×4 ([CHOICE] §8.5), not ×{scale}")
        if steps != 3:
            raise ValueError("MPENet is defined for 3 unfolded iterations (priors enter at t=2 and t=3)")
        if au_branch and not landmark_branch and au_attention:
            raise ValueError("AU attention maps need the landmark branch (set au_attention: false)")
        self.scale, self.features, self.steps = scale, features, steps
        self.aus = tuple(int(a) for a in aus) if aus is not None else None
        if self.aus is not None and len(self.aus) != n_au:
            raise ValueError(f"n_au={n_au} but {len(self.aus)} AUs listed")
        self.n_au = n_au
        self.keypoints = keypoints
        self.landmark_branch, self.au_branch, self.au_attention = landmark_branch, au_branch, au_attention
        self.prior_landmarks_at_t3 = prior_landmarks_at_t3
        self.detach_prior, self.heatmap_floor, self.prior_clamp = detach_prior, heatmap_floor, prior_clamp
        self.attention_ratio, self.attention_fill = attention_ratio, attention_fill
        self.aux_grad_to_sr = aux_grad_to_sr  # False: the branches see detached SR images (warm-up [CHOICE])
        self.register_buffer("mean", torch.tensor(DIC_MEAN).view(1, 3, 1, 1), persistent=False)

        f = features
        if scale == 8:  # DIC: conv3×3 → 4F + PReLU, PixelShuffle(2): 16² → 32²
            self.sfe = nn.Sequential(conv_prelu(3, 4 * f, 3), nn.PixelShuffle(2))
        else:  # §5.3 / SRFBN: conv3×3 → 4F + PReLU, conv1×1 4F → F + PReLU (32² stays 32²)
            self.sfe = nn.Sequential(conv_prelu(3, 4 * f, 3), conv_prelu(4 * f, f, 1))
        c2 = 2 * f + (keypoints if landmark_branch else 0)
        c3 = 2 * f + (keypoints if landmark_branch and prior_landmarks_at_t3 else 0) + (n_au if au_branch else 0)
        self.fuse = nn.ModuleList([_fuse(f, f, fuse_act), _fuse(c2, f, fuse_act), _fuse(c3, f, fuse_act)])
        self.core = SRFBNProjectionCore(f, groups, scale)  # SRFBN feedback block without compress_in
        self.recb = nn.Sequential(deconv_prelu(f, f, 8, 4, 2), nn.Conv2d(f, 3, 3, 1, 1))
        self.align = AlignmentBranch(keypoints, align_channels, align_stacks, align_depth,
                                     align_head_init_std) if landmark_branch else None
        self.au_net = AUBranch(n_au, au_input_norm, au_width) if au_branch else None

    # -- parts -----------------------------------------------------------------------------------
    def sr_parameters(self) -> int:
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith(("align.", "au_net.")))

    def _prior_heatmaps(self, hm: torch.Tensor) -> torch.Tensor:
        """Step-1 heatmaps as a prior: each map divided by its max (floored), as DIC does; with
        ``prior_clamp`` negative responses are cut first, so the prior lies in [0, 1] ([CHOICE])."""
        h = hm.detach() if self.detach_prior else hm
        if self.prior_clamp:
            h = h.clamp_min(0.0)
        return h / h.amax(dim=(2, 3), keepdim=True).clamp_min(self.heatmap_floor)

    def _branch_input(self, sr: torch.Tensor) -> torch.Tensor:
        """What the alignment / AU branch sees: SR itself (paper) or, with ``aux_grad_to_sr`` false, a
        detached copy, so the branch losses train only the branch."""
        return sr if self.aux_grad_to_sr else sr.detach()

    def forward(self, lr: torch.Tensor) -> dict[str, Any]:
        x = lr - self.mean
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        f_sf = self.sfe(x)
        srs: list[torch.Tensor] = []
        heatmaps = au_logits = au_maps = None
        fb: torch.Tensor | None = None
        prior: torch.Tensor | None = None
        for t in range(self.steps):
            if t == 0:
                inp = f_sf
            else:
                parts = [f_sf, fb]
                if t == 1 and self.landmark_branch:
                    parts.append(prior)
                if t == 2:
                    if self.landmark_branch and self.prior_landmarks_at_t3:
                        parts.append(prior)
                    if self.au_branch:
                        parts.append(au_maps)
                inp = torch.cat(parts, 1)
            fb = self.core(self.fuse[t](inp))
            sr = self.recb(fb) + skip
            srs.append(sr + self.mean)
            if t == 0 and self.landmark_branch:
                heatmaps = self.align(self._branch_input(sr))  # on the (mean-shifted) SR¹
                prior = self._prior_heatmaps(heatmaps)
            if t == 1 and self.au_branch:
                au_logits = self.au_net(self._branch_input(srs[-1]))
                prob = torch.sigmoid(au_logits)
                size = f_sf.shape[-1]
                if self.au_attention:
                    lm = heatmap_argmax(heatmaps) * (size / heatmaps.shape[-1])
                    att = au_attention_maps(lm, self.aus, size, self.attention_ratio, self.attention_fill)
                else:
                    att = torch.ones(prob.shape[0], self.n_au, size, size, device=prob.device)
                au_maps = prob[:, :, None, None] * att
        return {"sr": srs, "heatmaps": heatmaps, "au_logits": au_logits, "au_maps": au_maps}


# ------------------------------------------------------------------------------------------------
# losses (§8.4)
# ------------------------------------------------------------------------------------------------


def occurrence_weights(rates: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """w_i = n·(1/r_i) / Σ_j (1/r_j) from occurrence rates r (floored so an unseen AU stays finite)."""
    inv = 1.0 / rates.clamp_min(floor)
    return rates.numel() * inv / inv.sum()


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L_cross = −Σ_i w_i [y log ŷ + (1−y) log(1−ŷ)], mean over the batch (stable logit form)."""
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # [B, n]
    return (per * weights.view(1, -1)).sum(1).mean()


def weighted_dice(prob: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                  eps: float = 1.0) -> torch.Tensor:
    """L_dice = Σ_i w_i (1 − (2 Σ_b y ŷ + ε) / (Σ_b y² + Σ_b ŷ² + ε)) (batch sums per AU, V-Net form)."""
    num = 2.0 * (target * prob).sum(0) + eps
    den = (target ** 2).sum(0) + (prob ** 2).sum(0) + eps
    return (weights * (1.0 - num / den)).sum()


# ------------------------------------------------------------------------------------------------
# the trained modules: generator + AU occurrence counts (MPENet), + discriminator (MPEGAN)
# ------------------------------------------------------------------------------------------------


class _RunningRates(nn.Module):
    """Cumulative AU occurrence counts over the training batches seen (saved with the weights)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("positives", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, y: torch.Tensor) -> None:
        self.positives += y.detach().to(self.positives).sum(0)
        self.seen += y.shape[0]

    def rates(self) -> torch.Tensor:  # Laplace-smoothed occurrence rates
        return ((self.positives + 1.0) / (self.seen + 2.0)).float()


class MPENetModel(nn.Module):
    """MPENet generator + the running AU occurrence counts; ``forward(lr)`` is the generator's."""

    def __init__(self, generator: MPENet) -> None:
        super().__init__()
        self.generator = generator
        self.au_rates = _RunningRates(generator.n_au)
        self.register_buffer("init_done", torch.zeros((), dtype=torch.uint8))  # see ensure_init

    def forward(self, x: torch.Tensor, mode: str = "sr") -> Any:
        if mode == "au":  # AU pre-training on HR images (§8.5 CHOICE)
            return self.generator.au_net(x)
        return self.generator(x)


def _model_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    aus = [int(a) for a in config.get("aus", (1, 2, 4, 6, 9, 12, 25, 26))]
    return dict(
        n_au=len(aus), aus=aus, features=int(config.get("features", 48)), groups=int(config.get("groups", 6)),
        keypoints=int(config.get("keypoints", 68)), fuse_act=bool(config.get("fuse_act", True)),
        landmark_branch=bool(config.get("landmark_branch", True)), au_branch=bool(config.get("au_branch", True)),
        au_attention=bool(config.get("au_attention", True)),
        prior_landmarks_at_t3=bool(config.get("prior_landmarks_at_t3", True)),
        detach_prior=bool(config.get("detach_prior", False)), heatmap_floor=float(config.get("heatmap_floor", 0.05)),
        prior_clamp=bool(config.get("prior_clamp", True)),
        align_channels=int(config.get("align_channels", 128)), align_stacks=int(config.get("align_stacks", 2)),
        align_depth=int(config.get("align_depth", 4)),
        align_head_init_std=float(config.get("align_head_init_std", 1e-3)),
        au_input_norm=str(config.get("au_input_norm", "imagenet")),
        au_width=int(config.get("au_width", 64)),
        attention_ratio=float(config.get("attention_ratio", 0.14)),
        attention_fill=float(config.get("attention_fill", 0.56)),
        aux_grad_to_sr=bool(config.get("aux_grad_to_sr", True)))


def _init_kaiming(module: nn.Module, scale: float = 1.0) -> None:
    """DIC/SRFBN-style init of the SR branch convs (Kaiming normal fan-in × ``scale``, zero bias)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_generator(scale: int, config: Mapping[str, Any]) -> MPENet:
    gen = MPENet(scale=scale, **_model_kwargs(config))
    init = str(config.get("init", "kaiming"))
    if init == "kaiming":
        _init_kaiming(nn.ModuleList([gen.sfe, gen.fuse, gen.core, gen.recb]), float(config.get("init_scale", 1.0)))
    elif init != "torch":
        raise ValueError(f"init={init!r}: use kaiming or torch (PyTorch's default layer init)")
    return gen


class MPEGANModel(MPENetModel):
    """MPENet generator + SRGAN discriminator in one module (one optimiser, one forward for DDP).

    ``forward(lr)`` → generator outputs; ``forward(lr, mode="gan", hr=HR)`` additionally returns the
    discriminator logits on HR, on the detached SR³ (discriminator loss) and on SR³ through a frozen
    copy of the discriminator's parameters (generator loss), so one backward gives each network only
    its own loss's gradient."""

    def __init__(self, generator: MPENet, discriminator: SRGANDiscriminator) -> None:
        super().__init__(generator)
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor, mode: str = "sr", hr: torch.Tensor | None = None) -> Any:
        if mode != "gan":
            return super().forward(x, mode)
        out = dict(self.generator(x))
        fake = out["sr"][-1]
        d = self.discriminator
        out["d_real"] = d(hr)
        out["d_fake"] = d(fake.detach())
        frozen = {n: p.detach() for n, p in d.named_parameters()}
        frozen.update({n: b.clone() for n, b in d.named_buffers()})  # BN statistics not touched twice
        out["d_fake_for_g"] = torch.func.functional_call(d, frozen, (fake,))
        return out
