"""Baseline losses: a backward pass on a batch of 2 gives finite gradients for every trainable
parameter, and one optimiser step of the method's own recipe lowers the loss on that batch.

Data: small random-but-fixed HR images (64², so the tests stay fast; every network here is fully
convolutional), the LR by antialiased bicubic, landmark and parsing priors built directly.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fsrbench.api import TrainBatch
from fsrbench.recipes import method_presets
from fsrbench.train.loop import make_optimizer
from fsrbench_baselines.dic.method import DICMethod
from fsrbench_baselines.edsr.method import EDSRMethod
from fsrbench_baselines.fsrnet.method import FSRNetMethod
from fsrbench_baselines.sparnet.method import SPARNetLightMethod, SPARNetMethod
from fsrbench_baselines.srcnn.method import SRCNNMethod

torch.set_num_threads(1)


def make_batch(scale: int, b: int = 2, size: int = 64, seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    # smooth random images (low-frequency content that SR can actually recover)
    hr = F.interpolate(torch.rand(b, 3, size // 8, size // 8, generator=g), size=size, mode="bilinear",
                       align_corners=False)
    lr = F.interpolate(hr, size=size // scale, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    up = F.interpolate(lr, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    lm = torch.rand(b, 68, 2, generator=g) * (size - 8) + 4
    parsing = torch.randint(0, 10, (b, size, size), generator=g, dtype=torch.uint8)
    return TrainBatch(hr=hr, lr=lr, upsampled=up, scale=scale,
                      priors={"landmarks68": lm, "parsing": parsing}, ids=[str(i) for i in range(b)])


# (method, scale, config overrides). Paper-width models except where noted; small HR crops.
CASES = [
    (SRCNNMethod, 4, {}),
    (EDSRMethod, 8, {}),
    (SPARNetLightMethod, 4, {}),
    (SPARNetMethod, 8, {"res_depth": 2}),  # 2 body FAUs instead of 10 (same blocks), for speed
    # RMSprop's first update is ~10·lr per weight (zero-initialised square average, alpha 0.99), which
    # overshoots on a 2-image batch at the recipe's 2.5e-4; a 10x smaller lr tests the gradient direction.
    (FSRNetMethod, 8, {"lr": 2.5e-5}),
    (DICMethod, 8, {"hg_pretrain_iterations": 0, "hg_freeze_iterations": 0, "features": 24,
                    "hg_features": 64, "num_steps": 2}),  # narrower DIC, all components present
    (DICMethod, 4, {"hg_pretrain_iterations": 0, "hg_freeze_iterations": 0, "features": 24,
                    "hg_features": 64, "num_steps": 2}),
]


def _ids(case):
    return f"{case[0].name}-x{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_loss_backward_and_step(case):
    cls, scale, overrides = case
    torch.manual_seed(0)
    method = cls()
    cfg = {**method_presets(method)["default"], **overrides}
    model = method.build_model(scale, cfg).train()
    batch = make_batch(scale)
    loss, logs = method.training_loss(model, batch, cfg)
    assert loss.dim() == 0 and torch.isfinite(loss)
    # loss terms: floats or detached 0-dim tensors (the engine reads them only when it writes a log row)
    assert logs and all(isinstance(v, float) or (torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad)
                        for v in logs.values())
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    opt.zero_grad()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    if cls is DICMethod:  # the step counter advanced; do not let it matter for the comparison
        model.train_step.zero_()
    loss2, _ = method.training_loss(model, batch, cfg)
    before, after = float(loss.detach()), float(loss2.detach())
    assert after < before, (before, after)


def test_fsrnet_loss_terms_use_priors():
    """The prior terms compare against rendered heatmaps / one-hot parsing: a perfect prior prediction
    makes them zero (reference targets built here by hand, not by the method)."""
    method = FSRNetMethod()
    cfg = method_presets(method)["default"]
    batch = make_batch(8, b=1, size=64)
    lm = torch.tensor([[[10.0, 20.0]] * 68])
    batch.priors["landmarks68"] = lm
    lab = torch.zeros(1, 64, 64, dtype=torch.uint8)
    lab[:, 32:, :] = 6  # nose in the lower half
    batch.priors["parsing"] = lab

    class Perfect(torch.nn.Module):
        output_tanh = False

        def forward(self, x):
            yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
            heat = torch.exp(-((xx - 5.0) ** 2 + (yy - 10.0) ** 2) / 2.0).expand(1, 68, 32, 32)
            pars = torch.zeros(1, 11, 32, 32)
            pars[:, 0, :16] = 1
            pars[:, 6, 16:] = 1
            return batch.hr, heat, pars, batch.hr

    _, logs = method.training_loss(Perfect(), batch, cfg)
    assert logs["heatmap_mse"] < 1e-10 and logs["parsing_mse"] == 0.0
    assert logs["coarse_mse"] == 0.0 and logs["fine_mse"] == 0.0


def test_fsrnet_rejects_missing_prior():
    method = FSRNetMethod()
    cfg = method_presets(method)["default"]
    batch = make_batch(8, b=1)
    del batch.priors["parsing"]
    model = method.build_model(8, cfg)
    with pytest.raises(ValueError, match="parsing"):
        method.training_loss(model, batch, cfg)


def test_fsrnet_init_from_starts_from_other_weights_and_refuses_a_missing_file(tmp_path):
    """cpu-reference-warm starts x4 from the x8 weights: the same network at both scales (its input is the
    bicubic-upsampled LR), so every tensor of an x8 model loads into an x4 one; the run records the file's
    SHA-256 (hashlib here); a missing file is a training error, not a silent from-scratch run."""
    import hashlib

    from safetensors.torch import save_file

    method = FSRNetMethod()
    cfg = dict(method_presets(method)["tiny"])
    src = method.build_model(8, dict(cfg, init_std=0.5))
    path = tmp_path / "x8.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    warm = method.build_model(4, dict(cfg, init_from=str(path)))
    for k, v in src.state_dict().items():
        assert torch.equal(warm.state_dict()[k], v), k
    assert warm.init_report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert warm.init_report["loaded_tensors"] == len(src.state_dict())
    cold = method.build_model(4, cfg)
    assert not all(torch.equal(cold.state_dict()[k], v) for k, v in src.state_dict().items() if v.is_floating_point())
    missing = dict(cfg, init_from=str(tmp_path / "nope.safetensors"))
    model = method.build_model(4, missing)  # evaluation rebuilds from a training config: no error here
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        method.training_loss(model, make_batch(4, b=1), missing)


def test_dic_phases():
    """Hourglass pre-training (SR branch untouched) → frozen hourglass → joint training."""
    method = DICMethod()
    cfg = {**method_presets(method)["default"], "hg_pretrain_iterations": 1, "hg_freeze_iterations": 1, "features": 16,
           "hg_features": 32, "num_steps": 2}
    model = method.build_model(8, cfg)
    batch = make_batch(8, b=1)
    phases = []
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        loss, logs = method.training_loss(model, batch, cfg)
        loss.backward()
        phases.append(logs["phase"])
        sr_grad = model.core.up[0][0].weight.grad is not None or model.first_core.up[0][0].weight.grad is not None
        hg_grad = model.hourglass.compress_in.weight.grad is not None
        if logs["phase"] == 0.0:
            assert hg_grad and not sr_grad
        elif logs["phase"] == 1.0:
            assert sr_grad and not hg_grad
        else:
            assert sr_grad and hg_grad
    assert phases == [0.0, 1.0, 2.0]
    assert int(model.train_step) == 3
    assert "train_step" in model.state_dict()  # saved with checkpoints, so resuming keeps the phase


def test_dic_init_from_loads_an_earlier_stage_once(tmp_path):
    """A stage-1 DIC (T=4) starts from a stage-0 file: every tensor equals the file's after the first
    training step's load (train_step continues from the file), and a model already past step 0 (a
    resumed run) never re-reads it."""
    from safetensors.torch import save_file

    method = DICMethod()
    small = dict(features=16, hg_features=32, hg_pretrain_iterations=0, hg_freeze_iterations=0)
    torch.manual_seed(1)
    stage0 = method.build_model(8, {**method_presets(method)["cpu-reference-init"], **small})
    stage0.train_step.fill_(7)
    path = tmp_path / "stage0.safetensors"
    save_file({k: v.contiguous() for k, v in stage0.state_dict().items()}, str(path))

    cfg = {**method_presets(method)["cpu-reference"], "init_from": str(path), "recurrent_init": "none", **small}
    assert cfg["num_steps"] == 4
    torch.manual_seed(2)
    model = method.build_model(8, cfg)
    before = model.first_core.up[0][0].weight.detach().clone()
    assert not torch.equal(before, stage0.first_core.up[0][0].weight)
    loss, _ = method.training_loss(model, make_batch(8, b=1), cfg)
    for k, v in stage0.state_dict().items():
        if k != "train_step":
            assert torch.equal(model.state_dict()[k], v), k
    assert int(model.train_step) == 8  # 7 from the file + this step

    torch.manual_seed(3)
    resumed = method.build_model(8, cfg)
    resumed.train_step.fill_(5)
    kept = resumed.first_core.up[0][0].weight.detach().clone()
    method.training_loss(resumed, make_batch(8, b=1), cfg)
    assert torch.equal(resumed.first_core.up[0][0].weight, kept)


def test_dic_recurrent_init_first_step_makes_every_step_reproduce_step_0():
    """``recurrent_init: first_step``: after the copy, a random T=4 DIC (PReLU slopes at their 0.2 init)
    returns SR_t == SR_0 for every t (the fusion's attention cannot matter: its groups are identical), while
    without it the steps differ; a bad value is refused by name."""
    from fsrbench_baselines.dic.model import DIC, init_recurrent_from_first_step

    torch.manual_seed(4)
    model = DIC(scale=8, features=8, steps=4, groups=2, hg_features=16, fusion_blocks=2, hg_depth=2).eval()
    x = torch.rand(1, 3, 16, 16) - 0.5
    with torch.no_grad():
        srs, _ = model(x)
        assert (srs[1] - srs[0]).abs().max() > 1e-3
        init_recurrent_from_first_step(model)
        srs, _ = model(x)
    for t in range(1, 4):
        torch.testing.assert_close(srs[t], srs[0], rtol=0, atol=1e-5)

    method = DICMethod()
    cfg = {**method_presets(method)["cpu-reference"], "init_from": "x.safetensors", "recurrent_init": "sideways",
           "features": 8, "hg_features": 16, "hg_pretrain_iterations": 0, "hg_freeze_iterations": 0}
    with pytest.raises(ValueError, match="recurrent_init"):
        method.training_loss(method.build_model(8, cfg), make_batch(8, b=1), cfg)
