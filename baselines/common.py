"""Building blocks shared by the baseline face-SR networks (and re-used by MPENet / UFVNet).

What lives here (names are stable; other methods import them):

* ``conv_prelu`` / ``deconv_prelu``     – conv (or transposed conv) + PReLU(init 0.2), the SRFBN/DIC unit;
* ``BottleneckNoBN`` / ``PreActBottleneck`` – the two hourglass residual modules (DIC's BN-free one and
  the Newell-style pre-activation one used by FSRNet);
* ``Hourglass``                          – recursive hourglass over either residual module;
* ``FeedbackHourglass``                  – DIC's landmark estimator with a hidden state between steps;
* ``SRFBNProjectionCore``                – the SRFBN feedback block's G up/down projection groups;
* ``FeatureHeatmapFusion``, ``merge_heatmaps_5`` – DIC's attentive fusion and its 68→5 component maps;
* ``heatmaps_from_landmarks``, ``parsing_onehot`` – training priors from the ``TrainBatch.priors``
  catalogue ("landmarks68" [B,68,2] in 128-px coordinates, "parsing" uint8 [B,128,128]);
* ``BaselineMethod`` – a :class:`fsrbench.api.TrainableMethod` whose ``info()`` reports its recipe file and
  parameter count; ``init_normal`` – SPARNet/pix2pix-style initialisation.

Recipes (the YAML presets) are read by :mod:`fsrbench.recipes` and optimisers/schedules are built by
:mod:`fsrbench.train.loop`; nothing here duplicates them.

Everything expects float32 NCHW tensors; nothing here downloads anything.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.api import TrainableMethod

# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all registered parameters unless ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_prelu(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int | None = None,
               act: bool = True) -> nn.Sequential:
    """Conv2d (zero "same" padding unless ``padding`` is given) followed by PReLU(1, init 0.2)."""
    if padding is None:
        padding = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding)]
    if act:
        layers.append(nn.PReLU(1, init=0.2))
    return nn.Sequential(*layers)


def deconv_prelu(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """ConvTranspose2d followed by PReLU(1, init 0.2)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding), nn.PReLU(1, init=0.2))


def projection_geometry(factor: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of SRFBN's up/down projections for an internal factor 2/3/4/8."""
    table = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2), 8: (12, 8, 2)}
    if factor not in table:
        raise ValueError(f"SRFBN projections support factors 2, 3, 4, 8, not {factor}")
    return table[factor]


# ------------------------------------------------------------------------------------------------
# hourglass family
# ------------------------------------------------------------------------------------------------


class BottleneckNoBN(nn.Module):
    """DIC's BN-free hourglass residual: conv1x1 C_in→C/2, ReLU, conv3x3, conv1x1 C/2→C; 1x1 skip if needed."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.body = nn.Sequential(nn.Conv2d(c_in, mid, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(mid, mid, 3, padding=1), nn.Conv2d(mid, c_out, 1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        return (x if self.skip is None else self.skip(x)) + res


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (Newell et al.): BN-ReLU-conv1x1 C_in→C/2, BN-ReLU-conv3x3, BN-ReLU-conv1x1 →C.

    The skip is the identity, or a 1x1 conv when the channel count changes.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=False), nn.Conv2d(c_in, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        return (x if self.skip is None else self.skip(x)) + res


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` levels, ``channels`` wide, built from a residual ``block``.

    Level n: up = block(x); low = block(maxpool2(x)) → [hourglass n−1 | block] → block → upsample ×2;
    out = up + low.  ``upsample`` is "nearest" (Newell / FSRNet) or "bilinear" (DIC, align_corners=True).
    """

    def __init__(self, depth: int, channels: int, block: type[nn.Module] = PreActBottleneck,
                 upsample: str = "nearest") -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("hourglass depth must be >= 1")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', not {upsample!r}")
        self.depth, self.upsample = depth, upsample
        self.up = block(channels, channels)
        self.low_in = block(channels, channels)
        self.inner = Hourglass(depth - 1, channels, block, upsample) if depth > 1 else block(channels, channels)
        self.low_out = block(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        low = self.low_out(self.inner(self.low_in(F.max_pool2d(x, 2))))
        if self.upsample == "nearest":
            low = F.interpolate(low, scale_factor=2, mode="nearest")
        else:
            low = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)
        return up + low


class FeedbackHourglass(nn.Module):
    """DIC's landmark estimator (no BN): image → K heatmaps at 1/4 resolution, with a hidden state.

    stem: conv7x7/2 3→F/4 + ReLU, res F/4→F/2, maxpool2, res F/2→F/2, res F/2→F (F = ``features``);
    concat with the previous hidden state (first call: with itself) → conv1x1 2F→2F → hourglass(depth,
    2F, bilinear) → first F channels → res F, conv1x1+ReLU, conv1x1 F→K = heatmaps; last F = new hidden.
    """

    def __init__(self, features: int = 256, keypoints: int = 68, depth: int = 4) -> None:
        super().__init__()
        f = features
        self.features = f
        self.stem = nn.Sequential(
            nn.Conv2d(3, f // 4, 7, 2, 3), nn.ReLU(inplace=True),
            BottleneckNoBN(f // 4, f // 2), nn.MaxPool2d(2, 2),
            BottleneckNoBN(f // 2, f // 2), BottleneckNoBN(f // 2, f))
        self.compress_in = nn.Conv2d(2 * f, 2 * f, 1)
        self.hourglass = Hourglass(depth, 2 * f, BottleneckNoBN, "bilinear")
        self.head = nn.Sequential(BottleneckNoBN(f, f), nn.Conv2d(f, f, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(f, keypoints, 1))

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.stem(x)
        feat = self.compress_in(torch.cat((feat, feat if hidden is None else hidden), 1))
        feat = self.hourglass(feat)
        return self.head(feat[:, : self.features]), feat[:, self.features:]


# ------------------------------------------------------------------------------------------------
# SRFBN feedback core and DIC's attentive fusion
# ------------------------------------------------------------------------------------------------


class SRFBNProjectionCore(nn.Module):
    """The G projection groups of SRFBN's feedback block, on LR features of ``features`` channels.

    For g = 1..G: LR-concat of all previous LR outputs (→ 1x1 compression for g > 1) → up-projection
    (ConvTranspose, factor ``factor``) → HR-concat (→ 1x1 for g > 1) → down-projection (strided conv);
    the G LR outputs are concatenated and compressed by a 1x1 conv. Every conv is followed by PReLU.
    """

    def __init__(self, features: int, groups: int, factor: int) -> None:
        super().__init__()
        k, s, p = projection_geometry(factor)
        self.groups = groups
        self.up = nn.ModuleList(deconv_prelu(features, features, k, s, p) for _ in range(groups))
        self.down = nn.ModuleList(conv_prelu(features, features, k, s, p) for _ in range(groups))
        self.up_tran = nn.ModuleList(conv_prelu(features * (g + 1), features, 1) for g in range(1, groups))
        self.down_tran = nn.ModuleList(conv_prelu(features * (g + 1), features, 1) for g in range(1, groups))
        self.compress_out = conv_prelu(groups * features, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lr_feats, hr_feats = [x], []
        for g in range(self.groups):
            lr = torch.cat(lr_feats, 1)
            if g > 0:
                lr = self.up_tran[g - 1](lr)
            hr_feats.append(self.up[g](lr))
            hr = torch.cat(hr_feats, 1)
            if g > 0:
                hr = self.down_tran[g - 1](hr)
            lr_feats.append(self.down[g](hr))
        return self.compress_out(torch.cat(lr_feats[1:], 1))


class _GroupedResBlock(nn.Module):
    """conv3x3 (grouped) + LeakyReLU(0.2) + conv3x3 (grouped), identity add (no activation after)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=groups),
                                  nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, groups=groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FeatureHeatmapFusion(nn.Module):
    """DIC's attentive fusion: C features → N·C (1x1 + LReLU) → ``blocks`` grouped res blocks (N groups);
    the N groups of C channels are weighted by softmax(attention maps over N) and summed → C channels."""

    def __init__(self, features: int, n_maps: int = 5, blocks: int = 7) -> None:
        super().__init__()
        self.n_maps = n_maps
        wide = features * n_maps
        self.conv_in = nn.Sequential(nn.Conv2d(features, wide, 1), nn.LeakyReLU(0.2, inplace=True))
        self.res = nn.Sequential(*[_GroupedResBlock(wide, n_maps) for _ in range(blocks)])

    def forward(self, feat: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        if maps.shape[1] != self.n_maps:
            raise ValueError(f"expected {self.n_maps} attention maps, got {maps.shape[1]}")
        b, _, h, w = feat.shape
        feat = self.res(self.conv_in(feat)).view(b, self.n_maps, -1, h, w)
        if maps.shape[-2:] != (h, w):
            maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)
        att = torch.softmax(maps, dim=1).unsqueeze(2)
        return (feat * att).sum(1)


# 68-point facial components used by DIC (0-based indices)
COMPONENTS_68: dict[str, tuple[int, int]] = {
    "left_eye": (36, 42), "right_eye": (42, 48), "nose": (27, 36), "mouth": (48, 68), "silhouette": (0, 27)}


def merge_heatmaps_5(heatmaps: torch.Tensor, detach: bool = False, floor: float = 0.05) -> torch.Tensor:
    """68 heatmaps → 5 component maps (left eye, right eye, nose, mouth, jaw+brows).

    Each map is divided by its own spatial maximum (floored at ``floor``), then the maps of each
    component are summed.
    """
    if heatmaps.shape[1] != 68:
        raise ValueError(f"merge_heatmaps_5 needs 68 heatmaps, got {heatmaps.shape[1]}")
    peak = heatmaps.amax(dim=(2, 3), keepdim=True).clamp_min(floor)
    h = heatmaps / peak
    out = torch.stack([h[:, a:b].sum(1) for a, b in COMPONENTS_68.values()], 1)
    return out.detach() if detach else out


# ------------------------------------------------------------------------------------------------
# training priors
# ------------------------------------------------------------------------------------------------


def heatmaps_from_landmarks(landmarks: torch.Tensor, size: int, sigma: float = 1.0,
                            hr_size: int = 128) -> torch.Tensor:
    """Landmarks [B,K,2] (x, y in pixels of the ``hr_size`` image) → Gaussian heatmaps [B,K,size,size]
    (:func:`fsrbench.data.priors.render_heatmaps`, the project's one renderer), float32 on the
    landmarks' device."""
    from fsrbench.data.priors import render_heatmaps

    out = render_heatmaps(landmarks, size, sigma, hr_size)
    return torch.as_tensor(out, dtype=torch.float32, device=landmarks.device)


def parsing_onehot(parsing: torch.Tensor, classes: int, size: int) -> torch.Tensor:
    """uint8/long label map [B,H,W] → one-hot float [B,classes,size,size] (nearest resampling).

    Labels >= ``classes`` raise (they would silently vanish from the target).
    """
    lab = torch.as_tensor(parsing).long()
    if lab.dim() == 4:
        lab = lab[:, 0]
    if int(lab.max()) >= classes:
        raise ValueError(f"parsing label {int(lab.max())} does not fit {classes} classes")
    if lab.shape[-1] != size:
        lab = F.interpolate(lab[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    return F.one_hot(lab, classes).permute(0, 3, 1, 2).float()


def require_prior(batch: Any, name: str, method: str) -> torch.Tensor:
    """``batch.priors[name]`` or a ValueError naming the missing prior."""
    if name not in batch.priors:
        raise ValueError(f"{method} training needs the prior {name!r} in TrainBatch.priors "
                         f"(declared in {method}.train_priors); got {sorted(batch.priors)}")
    return batch.priors[name]


# ------------------------------------------------------------------------------------------------
# method base class, initialisation
# ------------------------------------------------------------------------------------------------


class BaselineMethod(TrainableMethod):
    """A :class:`fsrbench.api.TrainableMethod` whose ``info()`` names its recipe file and parameter count."""

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"config": self.config_file}
        model = getattr(self, "model", None)
        if isinstance(model, nn.Module):
            out["parameters"] = count_parameters(model)
        return out


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """SPARNet/pix2pix-style init: conv/linear weights N(0, std), biases 0, BN weight N(1, std), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
