"""W-Net (Liu, Yang, Liu 2024; METHODS.md §9): Parsing Block + W-shaped LPF fusions + SCAB encoder–decoder.

Input x: the bicubic-upsampled LR, [B,3,128,128] in [0,1]. Output: (SR [B,3,128,128], parsing map
[B,3,128,128]) — the parsing map is the Parsing Block's prediction of the binary skin mask.

Data flow (C = ``channels``, all widths config keys):

1. P = ParsingBlock(x); p = mean of P's channels (1-channel map fed to every LPF, §9.2 CHOICE).
2. W-part: h = conv3×3([x, P]) (6→C) ("fusion 1" = the concatenation); for each of n_up = log2(max_up)
   steps: h = LPF(Up(h), NN(p, ×2^k)) with a conv3×3 before every Up after the first; then n_up steps
   back down: h = LPF(Down(conv3×3(h)), NN(p, ×2^k)) — at max_up = 8 that is 6 LPFs at 256², 512²,
   1024², 512², 256², 128² (7 fusions with the concatenation). ``pre_encoder_conv`` adds one more
   conv3×3 C→C after the last LPF (see docs/methods/wnet.md: needed to reproduce the spec's parameter
   count 6,159,350).
3. Encoder, ``levels`` levels: h = LPF(SCAB^k(Down(h)), NN(p) at that size) (64², 32², 16², 8²); decoder:
   h = SCAB^k(Up(h)) + (encoder input of the same size) (additive skips, CHOICE).
4. SR = conv3×3(h) (C→3) + x (global residual, CHOICE).

Up = conv3×3 C→4C → PixelShuffle(2) → BN(C); Down = PixelUnshuffle(2) → conv3×3 4C→C → BN(C).

Memory: the 1024² level dominates (64-ch maps of 256 MiB each in fp32). ``checkpoint=True`` wraps every
W-part stage (conv → Up/Down → LPF) and every encoder/decoder level in torch.utils.checkpoint (non-
reentrant), and with ``checkpoint_lpf`` (default) the branches inside every LPF are checkpointed too;
BatchNorm running statistics are not updated a second time during the recomputation.
``max_up`` = 4 or 2 stops the W-part at 512² / 256² (fewer LPFs, fewer parameters).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from .lpf import LPF
from .parsing_block import ParsingBlock
from .scab import SCAB


class Up(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 4 * c, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.shuffle(self.conv(x)))


class Down(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.conv = nn.Conv2d(4 * c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.unshuffle(x)))


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm momentum 0 (and the batch counter restored) inside the block: a recomputation does not move
    the running statistics."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            count = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
            saved.append((m, m.momentum, count))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom, count in saved:
            m.momentum = mom
            if count is not None:
                m.num_batches_tracked.copy_(count)


def _run(fn: Callable[..., torch.Tensor], owner: nn.Module, use_ckpt: bool, *args: torch.Tensor) -> torch.Tensor:
    """fn(*args), through non-reentrant activation checkpointing when ``use_ckpt`` (and grads are on)."""
    if not (use_ckpt and torch.is_grad_enabled()):
        return fn(*args)
    calls = [0]

    def wrapped(*a: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 1:
            return fn(*a)
        with _frozen_bn_stats(owner):  # the recomputation during backward
            return fn(*a)

    return _checkpoint(wrapped, *args, use_reentrant=False)


class WStage(nn.Module):
    """[conv3×3] → Up|Down → LPF with the parsing map at the new size."""

    def __init__(self, c: int, direction: str, pre_conv: bool, lpf_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.pre = nn.Conv2d(c, c, 3, padding=1) if pre_conv else nn.Identity()
        self.resize = Up(c) if direction == "up" else Down(c)
        self.lpf = LPF(c, **lpf_kwargs)

    def forward(self, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        h = self.resize(self.pre(h))
        return self.lpf(h, F.interpolate(p, size=h.shape[-2:], mode="nearest"))


class EncoderLevel(nn.Module):
    def __init__(self, c: int, n_scab: int, scab_kwargs: Mapping[str, Any], lpf_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.down = Down(c)
        self.scabs = nn.Sequential(*[SCAB(c, **scab_kwargs) for _ in range(n_scab)])
        self.lpf = LPF(c, **lpf_kwargs)

    def forward(self, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        h = self.scabs(self.down(h))
        return self.lpf(h, F.interpolate(p, size=h.shape[-2:], mode="nearest"))


class DecoderLevel(nn.Module):
    def __init__(self, c: int, n_scab: int, scab_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.up = Up(c)
        self.scabs = nn.Sequential(*[SCAB(c, **scab_kwargs) for _ in range(n_scab)])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.scabs(self.up(h))


class WNet(nn.Module):
    def __init__(self, channels: int = 64, max_up: int = 8, levels: int = 4, scabs_per_level: int = 2,
                 pre_encoder_conv: bool = True, skips: bool = True, global_residual: bool = True,
                 parsing_kwargs: Mapping[str, Any] | None = None, lpf_kwargs: Mapping[str, Any] | None = None,
                 scab_kwargs: Mapping[str, Any] | None = None, checkpoint: bool = False,
                 checkpoint_lpf: bool = True, tail_init: str = "torch") -> None:
        super().__init__()
        if max_up < 2 or max_up & (max_up - 1):
            raise ValueError(f"max_up must be a power of two >= 2, got {max_up}")
        c = channels
        lpf_kwargs = dict(lpf_kwargs or {})
        scab_kwargs = dict(scab_kwargs or {})
        self.n_up = int(math.log2(max_up))
        self.levels = levels
        self.skips, self.global_residual, self.checkpoint = skips, global_residual, checkpoint
        self.parsing = ParsingBlock(c, **(parsing_kwargs or {}))
        self.head = nn.Conv2d(6, c, 3, padding=1)
        stages = [WStage(c, "up", i > 0, lpf_kwargs) for i in range(self.n_up)]
        stages += [WStage(c, "down", True, lpf_kwargs) for _ in range(self.n_up)]
        self.w_stages = nn.ModuleList(stages)
        self.pre_encoder = nn.Conv2d(c, c, 3, padding=1) if pre_encoder_conv else nn.Identity()
        self.encoder = nn.ModuleList(EncoderLevel(c, scabs_per_level, scab_kwargs, lpf_kwargs) for _ in range(levels))
        self.decoder = nn.ModuleList(DecoderLevel(c, scabs_per_level, scab_kwargs) for _ in range(levels))
        self.tail = nn.Conv2d(c, 3, 3, padding=1)
        if tail_init == "zero":  # start exactly at the global-residual input (bicubic): SR = 0 + x
            if not global_residual:
                raise ValueError("tail_init='zero' needs global_residual=True (the output would be all zeros)")
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        elif tail_init != "torch":
            raise ValueError(f"tail_init must be 'torch' or 'zero', got {tail_init!r}")
        for m in self.modules():  # finer checkpointing inside every LPF (only with checkpoint=True)
            if isinstance(m, LPF):
                m.inner_checkpoint = bool(checkpoint and checkpoint_lpf)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] % (2 ** self.levels) or x.shape[-2] % (2 ** self.levels):
            raise ValueError(f"W-Net input size {tuple(x.shape[-2:])} must be divisible by {2 ** self.levels}")
        ck = self.checkpoint and self.training
        parsing = _run(self.parsing, self.parsing, ck, x)
        p = parsing.mean(1, keepdim=True)
        h = self.head(torch.cat([x, parsing], 1))
        for stage in self.w_stages:
            h = _run(stage, stage, ck, h, p)
        h = self.pre_encoder(h)
        enc_inputs = []
        for level in self.encoder:
            enc_inputs.append(h)
            h = _run(level, level, ck, h, p)
        for level in self.decoder:
            h = _run(level, level, ck, h)
            skip = enc_inputs.pop()
            if self.skips:
                h = h + skip
        sr = self.tail(h)
        if self.global_residual:
            sr = sr + x
        return sr, parsing


def build_wnet(config: Mapping[str, Any]) -> WNet:
    """W-Net from a flat config (keys of configs/wnet.yaml)."""
    g = config.get
    parsing_kwargs = {"branch": int(g("parsing_branch", 32)), "res_blocks": int(g("parsing_res_blocks", 2)),
                      "hg_depth": int(g("parsing_hg_depth", 4)), "out_channels": int(g("parsing_channels", 3)),
                      "ca_reduction": int(g("ca_reduction", 16)), "sa_kernel": int(g("sa_kernel", 7)),
                      "out_act": str(g("parsing_out_act", "none"))}
    lpf_kwargs = {"ca_reduction": int(g("ca_reduction", 16)), "sa_kernel": int(g("sa_kernel", 7))}
    scab_kwargs = {"reduction": int(g("ca_reduction", 16)), "heads": int(g("attn_heads", 4)),
                   "attn_bias": bool(g("attn_bias", True))}
    return WNet(channels=int(g("channels", 64)), max_up=int(g("max_up", 8)), levels=int(g("levels", 4)),
                scabs_per_level=int(g("scabs_per_level", 2)), pre_encoder_conv=bool(g("pre_encoder_conv", True)),
                skips=bool(g("skips", True)), global_residual=bool(g("global_residual", True)),
                parsing_kwargs=parsing_kwargs, lpf_kwargs=lpf_kwargs, scab_kwargs=scab_kwargs,
                checkpoint=bool(g("checkpoint", False)), checkpoint_lpf=bool(g("checkpoint_lpf", True)),
                tail_init=str(g("tail_init", "torch")))
