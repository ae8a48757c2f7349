"""UFVNet network (METHODS.md §10; paper ../shared/papers/ufvnet.txt), for every training stage.

Input: the LR image bicubic-upsampled to 128² (I_LS), float [B,3,128,128] in [0,1] (mapped to [-1,1]
inside, SPARNet's convention); outputs are returned in [0,1] (unclamped).

* stage "1a": ``anchors[k]`` = full SPARNet-Light-Attn3D generators (encoder, 1 body FAU, decoder),
  each trained on its anchor rate;
* stage "1b": ``regressor`` (AlexNet weight regressor) alone;  stage "1": both;
* stage "2" (the test model): ``anchors[k].encoder`` (the FE blocks and decoders of the anchors are
  dropped), the regressor, ``fe`` = one FAU n·128 → 128 at 16² (conv shortcut, 3-D attention, hourglass
  depth 2) and ``decoder`` = 3 up-FAUs + out conv (the anchor decoder's structure).  Fusion =
  concat(W_k · f_enc_k).  Parameter names of the encoders and regressor are the same in every stage, so
  stage 2 loads them from stage-1 weights.

Weights W: "regressor" (softmax of the regressor), "formula" (Eq. 4 from the known rate; ablation
UFVNet-FM) or "ones" (all 1; ablation UFVNet-NW).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from fsrbench_baselines.common import init_normal
from fsrbench_baselines.sparnet.model import FAU, SPARNet
from fsrbench_baselines.ufvnet.regressor import WeightRegressor, gt_weights

STAGES = ("1a", "1b", "1", "2")
WEIGHT_MODES = ("regressor", "formula", "ones")


class _EncoderOnly(nn.Module):
    """An anchor generator after stage 2 dropped its FE block and decoder (keeps key names)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder


class UFVNet(nn.Module):
    def __init__(self, stage: str = "2", anchors: Sequence[float] = (1 / 8, 1 / 4, 1 / 2),
                 weights: str = "regressor", fe_hg_depth: int = 2, regressor_pool_stride: int = 1,
                 regressor_dropout: float = 0.5, init_std: float = 0.02, regressor_fc: int = 4096) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}: use one of {STAGES}")
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights={weights!r}: use one of {WEIGHT_MODES}")
        if len(anchors) < 1:
            raise ValueError("UFVNet needs at least one anchor")
        self.stage, self.weights_mode = stage, weights
        self.anchor_rates = tuple(float(a) for a in anchors)
        n = len(self.anchor_rates)
        if n == 1 and weights == "regressor":
            weights = self.weights_mode = "ones"  # one anchor: nothing to weigh (OneSRG)
        has_anchors = stage in ("1a", "1", "2")
        has_regressor = stage in ("1b", "1") or (stage == "2" and weights == "regressor")
        if has_anchors:
            gens = [SPARNet(res_depth=1, attn="3d") for _ in range(n)]
            for g in gens:
                init_normal(g, init_std)
            if stage == "2":
                self.anchors = nn.ModuleList(_EncoderOnly(g.encoder) for g in gens)
            else:
                self.anchors = nn.ModuleList(gens)
        else:
            self.anchors = None
        self.regressor = WeightRegressor(n, regressor_pool_stride, regressor_dropout, regressor_fc) if has_regressor else None
        if stage == "2":
            width = gens[0].encoder[-1].conv2.conv.out_channels  # 128
            self.fe = FAU(n * width, width, "none", fe_hg_depth, "3d")
            tail = SPARNet(res_depth=1, attn="3d")  # only its decoder structure is used
            self.decoder = nn.Sequential(*tail.decoder, tail.out_conv)
            init_normal(self.fe, init_std)
            init_normal(self.decoder, init_std)
        else:
            self.fe = self.decoder = None

    # -- helpers ---------------------------------------------------------------------------------
    def weights_for(self, x: torch.Tensor, rate: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W [B,n], regressor logits or None) for normalised inputs x."""
        b, n = x.shape[0], len(self.anchor_rates)
        if self.weights_mode == "regressor" and self.regressor is not None:
            logits = self.regressor(x)
            return torch.softmax(logits, 1), logits
        if self.weights_mode == "formula":
            if rate is None:
                raise ValueError("formula weights (UFVNet-FM) need the input's down-sampling rate")
            return gt_weights(rate.to(x.device), self.anchor_rates).to(x.device, x.dtype), None
        return torch.ones(b, n, device=x.device, dtype=x.dtype), None

    def nearest_anchor(self, rate: torch.Tensor) -> torch.Tensor:
        a = torch.tensor(self.anchor_rates, device=rate.device)
        return (rate.view(-1, 1) - a.view(1, -1)).abs().argmin(1)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x01: torch.Tensor, mode: str = "sr", rate: torch.Tensor | None = None,
                anchor_inputs: Sequence[torch.Tensor] | None = None) -> dict[str, Any]:
        """mode "sr": the SR image (stage 2: fused model; stage 1/1a: the anchor generator nearest to
        ``rate``); "stage1": anchor generator k on ``anchor_inputs[k]`` (stages 1a/1) and the regressor
        logits on ``x01`` (stages 1b/1)."""
        x = x01 * 2.0 - 1.0
        out: dict[str, Any] = {}
        if mode == "stage1":
            if self.stage == "2":
                raise ValueError("mode 'stage1' needs a stage-1 model")
            if self.anchors is not None:
                if anchor_inputs is None or len(anchor_inputs) != len(self.anchors):
                    raise ValueError("stage 1a needs one input per anchor")
                out["anchor_sr"] = [(g(a * 2.0 - 1.0) + 1.0) / 2.0 for g, a in zip(self.anchors, anchor_inputs)]
            if self.regressor is not None:
                out["logits"] = self.regressor(x)
            return out
        if mode != "sr":
            raise ValueError(f"mode={mode!r}: use sr or stage1")
        if self.stage == "2":
            w, logits = self.weights_for(x, rate)
            feats = [a.encoder(x) * w[:, k].view(-1, 1, 1, 1) for k, a in enumerate(self.anchors)]
            sr = self.decoder(self.fe(torch.cat(feats, 1)))
            return {"sr": (sr + 1.0) / 2.0, "weights": w, "logits": logits}
        if self.anchors is None:
            raise ValueError("stage-1b weights hold only the weight regressor; they cannot super-resolve")
        if rate is None:
            raise ValueError("a stage-1 UFVNet super-resolves with the anchor nearest to the input rate; pass rate")
        k = self.nearest_anchor(rate).to(x.device)
        sr: torch.Tensor | None = None
        for j in k.unique().tolist():  # run each needed generator once, on its images only
            sel = k == j
            y = self.anchors[j](x[sel])
            if sr is None:  # the generators' dtype: bf16/fp16 under autocast, not the input's float32
                sr = y.new_empty((x.shape[0],) + tuple(y.shape[1:]))
            sr[sel] = y
        assert sr is not None
        return {"sr": (sr + 1.0) / 2.0, "anchor": k}


class UFVNetModel(UFVNet):
    """UFVNet plus the persistent ``init_done`` flag used by
    :func:`fsrbench_baselines.ufvnet.method.ensure_init_many`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("init_done", torch.zeros((), dtype=torch.uint8))
