"""The SPARNet generator and its Face Attention Units (Chen et al., TIP 2020); methods in :mod:`.method`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """[nearest ×2 if "up"] → reflection pad k//2 → conv k×k (stride 2 if "down"; bias iff no norm)
    → [BatchNorm] → [LeakyReLU(0.2)]."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, scale: str = "none", norm: bool = False,
                 act: bool = False) -> None:
        super().__init__()
        if scale not in ("none", "up", "down"):
            raise ValueError(f"scale must be none|up|down, not {scale!r}")
        self.scale = scale
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, 2 if scale == "down" else 1, bias=not norm)
        self.norm = nn.BatchNorm2d(c_out) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.act(self.norm(self.conv(self.pad(x))))


class AttentionHourglass(nn.Module):
    """Spatial-attention hourglass (64 mid channels): returns x · sigmoid(hourglass(x)).

    Level n: up = conv(x); low = stride-2 conv(x) → [level n−1 | conv] → nearest-up conv; sum.
    Every conv is ConvLayer 3x3 + BN + LReLU; the output conv (64 → ``c_attn``) has no norm/act.
    """

    def __init__(self, depth: int, c_in: int, c_attn: int, c_mid: int = 64) -> None:
        super().__init__()
        self.depth = depth
        self.levels = nn.ModuleList()
        for level in range(depth, 0, -1):
            c1 = c_in if level == depth else c_mid
            mods = nn.ModuleDict({"up": ConvLayer(c1, c_mid, norm=True, act=True),
                                  "down": ConvLayer(c1, c_mid, scale="down", norm=True, act=True),
                                  "rise": ConvLayer(c_mid, c_mid, scale="up", norm=True, act=True)})
            if level == 1:
                mods["bottom"] = ConvLayer(c_mid, c_mid, norm=True, act=True)
            self.levels.append(mods)
        self.out = ConvLayer(c_mid, c_attn)
        self.last_map: torch.Tensor | None = None

    def _run(self, i: int, x: torch.Tensor) -> torch.Tensor:
        mods = self.levels[i]
        up = mods["up"](x)
        low = mods["down"](x)
        low = self._run(i + 1, low) if i + 1 < len(self.levels) else mods["bottom"](low)
        low = mods["rise"](low)
        if low.shape[-2:] != up.shape[-2:]:
            low = F.interpolate(low, size=up.shape[-2:], mode="nearest")
        return up + low

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(self.out(self._run(0, x)))
        self.last_map = att.detach()
        return x * att


class FAU(nn.Module):
    """Face Attention Unit: pre-activation residual block with spatial attention.

    shortcut = identity, or ConvLayer 3x3 (bias, same rescaling) when size/channels change;
    main = BN → LReLU → ConvLayer3x3 (c_in→c_out, BN, LReLU; carries "up") → ConvLayer3x3 (BN, no act;
    carries "down") → attention hourglass (``attn`` "2d": 1 map, "3d": c_out maps).
    """

    def __init__(self, c_in: int, c_out: int, scale: str = "none", hg_depth: int = 2, attn: str = "2d") -> None:
        super().__init__()
        if attn not in ("2d", "3d"):
            raise ValueError(f"attn must be '2d' or '3d', not {attn!r}")
        self.shortcut = nn.Identity() if (scale == "none" and c_in == c_out) else ConvLayer(c_in, c_out, 3, scale)
        self.preact = nn.Sequential(nn.BatchNorm2d(c_in), nn.LeakyReLU(0.2, inplace=False))
        s1, s2 = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.conv1 = ConvLayer(c_in, c_out, 3, s1, norm=True, act=True)
        self.conv2 = ConvLayer(c_out, c_out, 3, s2, norm=True, act=False)
        self.attention = AttentionHourglass(hg_depth, c_out, 1 if attn == "2d" else c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.attention(self.conv2(self.conv1(self.preact(x))))


class SPARNet(nn.Module):
    """SPARNet generator on 128² inputs in [-1,1] (min_ch 32, max_ch 128, 16² bottleneck features).

    ``res_depth`` = number of FAUs at 16² (SPARNet 10, SPARNet-Light 1); ``attn`` = "2d" | "3d".
    Hourglass depths: encoder 4, 3, 2; body 2; decoder 3, 4, 5 (every hourglass bottoms out at 4²).
    """

    def __init__(self, res_depth: int = 10, attn: str = "2d", min_ch: int = 32, max_ch: int = 128,
                 size: int = 128, min_feat_size: int = 16, bottleneck_size: int = 4) -> None:
        super().__init__()
        clip = lambda c: max(min_ch, min(c, max_ch))  # noqa: E731
        steps = (size // min_feat_size).bit_length() - 1
        ch = clip(max_ch // (steps + 1))
        hg = (64 // bottleneck_size).bit_length() - 1
        enc: list[nn.Module] = [ConvLayer(3, ch, 3)]
        for _ in range(steps):
            enc.append(FAU(clip(ch), clip(ch * 2), "down", hg, attn))
            ch, hg = ch * 2, hg - 1
        hg += 1
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[FAU(clip(ch), clip(ch), "none", hg, attn) for _ in range(res_depth)])
        dec: list[nn.Module] = []
        for _ in range(steps):
            hg += 1
            dec.append(FAU(clip(ch), clip(ch // 2), "up", hg, attn))
            ch //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_conv = ConvLayer(clip(ch), 3, 3)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.decoder(self.body(self.encoder(x))))
