"""UFVNet as a trainable fsrbench method (METHODS.md §10): one model for any LR size (8²…64²).

``input = "upsampled"``, ``any_scale = True``: the harness bicubic-upsamples any LR to 128²; the
down-sampling rate r = LR side / 128 is read from ``batch.lr`` where a variant needs it (formula weights,
stage-1 nearest-anchor inference).

Training (config key ``stage``; METHODS.md §10.3):

* "1a": the anchor generators (SPARNet-Light-Attn3D), each on LR made from the HR batch at exactly its
  anchor rate (1/8, 1/4, 1/2 → 16², 32², 64² → 128²), L1 each (losses summed; no shared parameters);
* "1b": the AlexNet weight regressor as a soft classifier (soft cross-entropy against Eq. 4) on the
  training rates; "1": 1a and 1b in one run;
* "2": the integrated model (anchor encoders + regressor from stage-1 weights via ``init_from``, new FE
  block + final decoder) with L1 + 0.1·CE.

The degraded inputs of stages 1b/2 come from the HR image at a rate drawn per image from
``train_rates`` (``rate_source: sample``, [CHOICE] §10.4) through fsrbench's one degradation path
(``fsrbench.imageio.make_lr`` + ``upsample``, PIL bicubic on uint8), or from the engine's batch
(``rate_source: batch``: r = lr side / hr side).  Under the engine this CPU work runs in the data workers
(:meth:`UFVNetMethod.prepare_sample`, the rate from the sample's own seeded stream); called directly,
``training_loss`` degrades the batch itself.  Config: ``configs/ufvnet.yaml``; docs/methods/ufvnet.md.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.recipes import option
from fsrbench.train import unwrap
from fsrbench.train.data import u8_to_float
from fsrbench.weights import load_partial
from fsrbench_baselines.common import BaselineMethod
from fsrbench_baselines.ufvnet.model import UFVNetModel
from fsrbench_baselines.ufvnet.regressor import gt_weights, soft_cross_entropy

MR8 = tuple(k / 16 for k in range(1, 9))
#: prefix of the TrainBatch.priors entries :meth:`UFVNetMethod.prepare_sample` fills in the data workers
PREPARED = "ufvnet_"


def ensure_init_many(model: nn.Module, paths: Any) -> bool:
    """Load each file of ``paths`` (a path or a list) into the model once per run (see
    ``fsrbench_baselines.mpenet.method.ensure_init``): stage 2 takes the anchor encoders and the
    regressor from the stage-1 weights (only entries whose names exist in the stage-2 model are used)."""
    m = unwrap(model)
    if not paths or getattr(m, "init_known_done", False):
        return False
    if bool(m.init_done):  # one host sync per run: the flag never goes back to 0
        m.init_known_done = True
        return False
    for p in [paths] if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence) else paths:
        load_partial(m, p)
    m.init_done.fill_(1)
    m.init_known_done = True
    return True


def degrade_batch(hr01: torch.Tensor, sizes: Sequence[int], hr_size: int | None = None) -> torch.Tensor:
    """HR [B,3,H,W] in [0,1] → each image PIL-bicubic down to sizes[i]² and back up (fsrbench.imageio)."""
    from fsrbench.imageio import make_lr, tensor_to_uint8, to_tensor, upsample

    hr_u8 = tensor_to_uint8(hr01.detach().float().cpu())
    size = int(hr_size or hr01.shape[-1])
    ups = [upsample(make_lr(hr_u8[i], size=int(s)), size) for i, s in enumerate(sizes)]
    return to_tensor(np.stack(ups), device=hr01.device)


class UFVNetMethod(BaselineMethod):
    """UFVNet (Peng et al.): three anchor SPARNet-Light encoders fused by AlexNet-regressed weights."""

    name = "ufvnet"
    scales = (2, 4, 8, 16)
    any_scale = True
    input = "upsampled"
    description = ("UFVNet: one model for any input resolution — 3 anchor SPARNet-Light-Attn3D encoders "
                   "(1/8, 1/4, 1/2), AlexNet weight regressor, weighted fusion, FAU + decoder")
    config_file = "configs/ufvnet.yaml"
    train_priors = ()

    # -- model ---------------------------------------------------------------------------------
    @staticmethod
    def _anchors(config: Mapping[str, Any]) -> list[float]:
        return [float(a) for a in config.get("anchors", (1 / 8, 1 / 4, 1 / 2))]

    def build_model(self, scale: int, config: Mapping[str, Any]) -> nn.Module:
        stage = str(config.get("stage", "1a"))
        if stage == "2" and not config.get("init_from") and bool(config.get("require_init", True)):
            raise ValueError("UFVNet stage 2 starts from the stage-1 weights (paper): set init_from to the "
                             "stage-1a (anchors) and stage-1b (regressor) weights, e.g. --set "
                             "'init_from=[runs/ufvnet-1a/best.safetensors,runs/ufvnet-1b/best.safetensors]' "
                             "(or require_init=false to start from random weights)")
        return UFVNetModel(stage=stage, anchors=self._anchors(config),
                           weights=str(config.get("weights", "regressor")),
                           fe_hg_depth=int(config.get("fe_hg_depth", 2)),
                           regressor_pool_stride=int(config.get("regressor_pool_stride", 1)),
                           regressor_dropout=float(config.get("regressor_dropout", 0.5)),
                           regressor_fc=int(config.get("regressor_fc", 4096)),
                           init_std=float(config.get("init_std", 0.02)))

    # -- data ----------------------------------------------------------------------------------
    def prepare_sample(self, sample: Mapping[str, Any], rng: np.random.Generator,
                       config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Engine hook, run in the data workers: the degraded inputs of this sample (uint8, upsampled back to
        the HR side through fsrbench's one degradation path) — the anchor-rate inputs of stages 1a/1 and, with
        ``rate_source: sample``, the input at a rate drawn from ``train_rates`` (stages 1b/1/2), drawn from the
        sample's own random stream."""
        from fsrbench.imageio import make_lr, upsample

        stage = str(config.get("stage", "1a"))
        hr = sample["hr"]
        side = int(hr.shape[0])
        out: dict[str, np.ndarray] = {}
        if stage in ("1a", "1"):
            for k, a in enumerate(self._anchors(config)):
                out[f"{PREPARED}anchor{k}"] = upsample(make_lr(hr, size=int(round(a * side))), side)
        if stage in ("1b", "1", "2") and str(config.get("rate_source", "sample")) != "batch":
            rates = [float(r) for r in config.get("train_rates", MR8)]
            size = int(round(rates[int(rng.integers(len(rates)))] * side))
            out[f"{PREPARED}input"] = upsample(make_lr(hr, size=size), side)
            out[f"{PREPARED}size"] = np.asarray(size, dtype=np.int64)
        return out

    @staticmethod
    def batch_rate(batch: Any) -> torch.Tensor:
        """Down-sampling rate of the batch's LR (LR side / HR side) for every image."""
        hr_side = int(getattr(batch, "hr_size", 0) or batch.hr.shape[-1])
        r = float(batch.lr.shape[-1]) / hr_side
        return torch.full((batch.lr.shape[0],), r, device=batch.lr.device)

    def sample_inputs(self, batch: Any, config: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(upsampled input [B,3,128,128], rates [B]) for stages 1b/2."""
        if str(config.get("rate_source", "sample")) == "batch":
            return batch.upsampled, self.batch_rate(batch)
        if f"{PREPARED}input" in batch.priors:  # prepared by the data workers (prepare_sample)
            x = u8_to_float(batch.priors[f"{PREPARED}input"], batch.hr.device, option(config, "memory_format"))
            return x, batch.priors[f"{PREPARED}size"].to(batch.hr.device).float() / float(batch.hr.shape[-1])
        rates = [float(r) for r in config.get("train_rates", MR8)]
        hr_side = int(batch.hr.shape[-1])
        idx = torch.randint(len(rates), (batch.hr.shape[0],))  # global torch RNG: resumable
        sizes = [int(round(rates[int(i)] * hr_side)) for i in idx]
        x = degrade_batch(batch.hr, sizes)
        r = torch.tensor([s / hr_side for s in sizes], device=batch.hr.device)
        return x, r

    # -- losses --------------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: Any,
                      config: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        ensure_init_many(model, config.get("init_from"))
        m = unwrap(model)
        hr = batch.hr
        hr_pm = hr * 2.0 - 1.0
        logs: dict[str, float] = {}
        loss = hr.new_zeros(())
        stage = m.stage
        w_ce = float(config.get("w_ce", 0.1))
        if stage in ("1a", "1b", "1"):
            anchor_inputs = None
            if m.anchors is not None and f"{PREPARED}anchor0" in batch.priors:  # prepared by the data workers
                fmt = option(config, "memory_format")
                anchor_inputs = [u8_to_float(batch.priors[f"{PREPARED}anchor{k}"], hr.device, fmt)
                                 for k in range(len(m.anchor_rates))]
            elif m.anchors is not None:
                side = int(hr.shape[-1])
                anchor_inputs = [degrade_batch(hr, [int(round(a * side))] * hr.shape[0]) for a in m.anchor_rates]
            x, r = (self.sample_inputs(batch, config) if m.regressor is not None else (hr, None))
            out = model(x, mode="stage1", anchor_inputs=anchor_inputs)
            for k, sr in enumerate(out.get("anchor_sr", [])):
                l1 = F.l1_loss(sr * 2.0 - 1.0, hr_pm)
                loss = loss + l1
                logs[f"l1_anchor{k}"] = l1.detach()
            if "logits" in out:
                ce = soft_cross_entropy(out["logits"].float(), gt_weights(r, m.anchor_rates).to(hr.device))
                loss = loss + float(config.get("w_regressor", 1.0)) * ce
                logs["ce"] = ce.detach()
        else:
            x, r = self.sample_inputs(batch, config)
            out = model(x, mode="sr", rate=r)
            l1 = F.l1_loss(out["sr"] * 2.0 - 1.0, hr_pm)
            loss = loss + l1
            logs["l1"] = l1.detach()
            if out["logits"] is not None and w_ce > 0:
                ce = soft_cross_entropy(out["logits"].float(), gt_weights(r, m.anchor_rates).to(hr.device))
                loss = loss + w_ce * ce
                logs["ce"] = ce.detach()
        logs["loss"] = loss.detach()
        return loss, logs

    # -- inference -----------------------------------------------------------------------------
    def forward_sr(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch.upsampled, mode="sr", rate=self.batch_rate(batch))["sr"]

    def forward_weights(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The fusion weights W [B, n_anchors] the model uses for this batch (stage-2 models; no grad)."""
        with torch.no_grad():
            return model(batch.upsampled, mode="sr", rate=self.batch_rate(batch))["weights"]
