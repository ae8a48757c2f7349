"""UFVNet (baselines/ufvnet): Eq. 4 weights, regressor geometry, parameter counts, stages, ablations.

Expected numbers: Eq. 4 worked examples and parameter counts from METHODS.md §10 (derived there
independently); the degradation path is compared with fsrbench.imageio called directly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fsrbench.api import Batch, TrainBatch
from fsrbench_baselines.ufvnet.method import MR8, UFVNetMethod, degrade_batch, ensure_init_many
from fsrbench_baselines.ufvnet.model import UFVNet
from fsrbench_baselines.ufvnet.regressor import gt_weights, soft_cross_entropy


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the CPU runners are shared


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _config(preset: str = "default", **over: object) -> dict:
    from fsrbench.recipes import resolve_config

    cfg = resolve_config(UFVNetMethod(), preset)
    cfg.update(over)
    return cfg


def _batch(b: int = 1, seed: int = 0, lr_side: int = 16) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    # a smooth image (low-frequency pattern + noise) so that the SR task is meaningful
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    base = torch.stack([torch.sin(6 * xx), torch.cos(5 * yy), torch.sin(4 * (xx + yy))]) * 0.3 + 0.5
    hr = (base.unsqueeze(0).repeat(b, 1, 1, 1) + 0.05 * torch.rand(b, 3, 128, 128, generator=g)).clamp(0, 1)
    hr = torch.round(hr * 255) / 255
    lr = torch.nn.functional.interpolate(hr, size=lr_side, mode="area")
    return TrainBatch(hr=hr, lr=lr, upsampled=torch.nn.functional.interpolate(lr, size=128, mode="bicubic"),
                      scale=128 // lr_side, ids=[f"i{i}" for i in range(b)])


# ------------------------------------------------------------------------------------------------
# Eq. 4 (§10.2) and the regressor
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r,expect", [(1 / 16, (0.455, 0.364, 0.182)), (1 / 8, (0.5, 0.375, 0.125)),
                                      (1 / 4, (0.333, 0.5, 0.167)), (1 / 2, (0.2, 0.3, 0.5))])
def test_gt_weights_worked_examples(r, expect):
    w = gt_weights([r], (1 / 8, 1 / 4, 1 / 2))[0]
    assert w.tolist() == pytest.approx(expect, abs=5e-4)
    assert float(w.sum()) == pytest.approx(1.0)


def test_gt_weights_other_anchor_counts():
    assert gt_weights([0.3], [0.25]).tolist() == [[1.0]]
    w2 = gt_weights([0.25], [0.125, 0.5])[0]  # d = (1/8, 1/4): w = 1 - d/sum = (2/3, 1/3)
    assert w2.tolist() == pytest.approx([2 / 3, 1 / 3])
    w4 = gt_weights(torch.tensor(MR8), [1 / 16, 1 / 8, 1 / 4, 1 / 2])
    assert torch.allclose(w4.sum(1), torch.ones(8)) and bool((w4 >= 0).all())


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[0.5, 0.3, 0.2]])
    p = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    assert float(soft_cross_entropy(logits, t)) == pytest.approx(-(np.array([0.5, 0.3, 0.2]) * np.log(p)).sum())


@pytest.fixture(scope="module")
def full_model() -> UFVNet:
    torch.manual_seed(0)
    return UFVNet("2").eval()  # with the AlexNet regressor


def test_regressor_geometry_and_count(full_model):
    reg = full_model.regressor
    x = torch.rand(1, 3, 128, 128)
    assert tuple(reg.net.features(x).shape) == (1, 256, 6, 6)  # 128² reaches AlexNet's 6×6 (stride-1 pool)
    assert tuple(reg.eval()(x).shape) == (1, 3)
    assert _count(reg) == 61_103_843


# ------------------------------------------------------------------------------------------------
# architecture
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def formula_model() -> UFVNet:
    torch.manual_seed(0)
    return UFVNet("2", weights="formula").eval()


def test_parameter_counts_match_methods_md(formula_model, full_model):
    full = full_model
    assert _count(full) == 71_595_590
    assert _count(full) - _count(full.regressor) == 10_491_747
    assert _count(formula_model) == 10_491_747 and formula_model.regressor is None
    assert _count(UFVNet("1a")) == 3 * 5_242_211  # three SPARNet-Light-Attn3D generators


@pytest.mark.parametrize("anchors", [[0.25], [0.125, 0.5], [0.0625, 0.125, 0.25, 0.5]])
def test_anchor_count_ablations(anchors):
    m = UFVNet("2", anchors=anchors)
    n = len(anchors)
    assert len(m.anchors) == n and m.fe.conv1.conv.in_channels == 128 * n
    assert (m.regressor is None) == (n == 1)
    if n > 1:
        assert m.regressor.fc.out_features == n


def test_formula_and_ones_weights(formula_model):
    fm = formula_model
    nw = UFVNet.__new__(UFVNet)  # weights_for only reads these two attributes
    nw.weights_mode, nw.anchor_rates, nw.regressor = "ones", fm.anchor_rates, None
    x = torch.zeros(2, 3, 128, 128)
    r = torch.tensor([1 / 16, 0.5])
    w, logits = fm.weights_for(x, r)
    assert logits is None and torch.allclose(w, gt_weights(r, (1 / 8, 1 / 4, 1 / 2)))
    assert torch.equal(nw.weights_for(x, r)[0], torch.ones(2, 3))
    with pytest.raises(ValueError, match="rate"):
        fm.weights_for(x, None)


def test_any_input_size_evaluation_uses_the_lr_rate(formula_model):
    method = UFVNetMethod()
    assert method.any_scale and method.input == "upsampled" and method.supports(5)
    model = formula_model
    lr = torch.rand(1, 3, 24, 24)  # 3/16 of 128: no integer scale
    batch = Batch(ids=["a"], lr=lr, upsampled=torch.rand(1, 3, 128, 128), scale=5)
    with torch.no_grad():
        w = method.forward_weights(model, batch)
        sr = method.forward_sr(model, batch)
    assert torch.allclose(w, gt_weights([24 / 128], (1 / 8, 1 / 4, 1 / 2)))
    assert tuple(sr.shape) == (1, 3, 128, 128)


# ------------------------------------------------------------------------------------------------
# training stages
# ------------------------------------------------------------------------------------------------


def test_degrade_batch_is_the_canonical_path():
    from fsrbench.imageio import make_lr, tensor_to_uint8, to_tensor, upsample

    hr = _batch(2).hr
    got = degrade_batch(hr, [16, 40])
    u8 = tensor_to_uint8(hr)
    for i, s in enumerate((16, 40)):
        ref = to_tensor(upsample(make_lr(u8[i], size=s), 128))[0]
        assert torch.equal(got[i], ref)


def test_sample_inputs_draw_training_rates():
    method = UFVNetMethod()
    torch.manual_seed(3)
    cfg = _config()
    x, r = method.sample_inputs(_batch(4), cfg)
    assert tuple(x.shape) == (4, 3, 128, 128)
    assert all(any(abs(float(v) - t) < 1e-9 for t in MR8) for v in r)
    x2, r2 = method.sample_inputs(_batch(4, lr_side=32), dict(cfg, rate_source="batch"))
    assert r2.tolist() == [0.25] * 4


def test_stage1b_regressor_step_lowers_loss():
    torch.manual_seed(0)
    method = UFVNetMethod()
    cfg = _config("stage1b", rate_source="batch", regressor_dropout=0.0)
    model = method.build_model(8, cfg)
    batch = _batch(2)
    from fsrbench.train.loop import make_optimizer

    opt = make_optimizer(model.parameters(), cfg)
    loss, logs = method.training_loss(model, batch, cfg)
    assert set(logs) == {"ce", "loss"} and math.isfinite(logs["ce"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert float(method.training_loss(model, batch, cfg)[0].detach()) < float(loss.detach())


def test_stage2_step_lowers_loss_and_inits_from_stage1(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    method = UFVNetMethod()
    # a (partial) stage-1b checkpoint: the regressor's last layer, as stored by the engine (safetensors)
    fc = torch.nn.Linear(1000, 3)
    path = tmp_path / "s1b.safetensors"
    save_file({"regressor.fc.weight": fc.weight.detach(), "regressor.fc.bias": fc.bias.detach()}, str(path))
    cfg = _config("stage2", init_from=[str(path)], rate_source="batch", regressor_dropout=0.0)
    model = method.build_model(8, cfg)
    from fsrbench.train.loop import make_optimizer

    opt = make_optimizer(model.parameters(), cfg)
    batch = _batch(1)
    loss, logs = method.training_loss(model, batch, cfg)  # loads init_from first
    logs = {k: float(v) for k, v in logs.items()}
    assert int(model.init_done) == 1
    assert torch.equal(model.regressor.fc.weight, fc.weight)
    assert set(logs) == {"l1", "ce", "loss"}
    assert logs["loss"] == pytest.approx(logs["l1"] + 0.1 * logs["ce"], rel=1e-5)
    # the CE term reaches only the regressor (cheap: its graph holds nothing else)
    out = model(batch.upsampled, mode="sr", rate=method.batch_rate(batch))
    ce = soft_cross_entropy(out["logits"], gt_weights(method.batch_rate(batch), model.anchor_rates))
    others = [p for n, p in model.named_parameters() if not n.startswith("regressor.")]
    assert all(g is None for g in torch.autograd.grad(ce, others, allow_unused=True))
    assert torch.isfinite(out["weights"]).all() and torch.allclose(out["weights"].sum(1), torch.ones(1))
    opt.zero_grad()
    loss.backward()
    groups = {n.split(".")[0] for n, p in model.named_parameters()
              if p.grad is not None and float(p.grad.abs().sum()) > 0}
    assert groups == {"anchors", "regressor", "fe", "decoder"}
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    assert float(method.training_loss(model, batch, cfg)[0].detach()) < float(loss.detach())
    assert ensure_init_many(model, cfg["init_from"]) is False  # never re-read (resume / evaluation)


def test_stage2_requires_init_and_stage1a_keys_match_stage2():
    method = UFVNetMethod()
    with pytest.raises(ValueError, match="init_from"):
        method.build_model(8, _config("stage2"))
    s1 = UFVNet("1a")
    s2 = UFVNet("2", weights="ones")
    enc2 = {k for k in s2.state_dict() if k.startswith("anchors.")}
    assert enc2 and enc2 <= set(s1.state_dict())  # stage 2 takes the encoders by name


def test_stage1a_losses_per_anchor_and_nearest_anchor_inference():
    torch.manual_seed(0)
    method = UFVNetMethod()
    cfg = _config()
    model = method.build_model(8, cfg)
    batch = _batch(1)
    loss, logs = method.training_loss(model, batch, cfg)
    assert set(logs) == {"l1_anchor0", "l1_anchor1", "l1_anchor2", "loss"}
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.nearest_anchor(torch.tensor([1 / 16, 0.2, 0.3, 0.5])).tolist() == [0, 1, 1, 2]


def test_stage1_checkpoint_super_resolves_with_nearest_anchor():
    torch.manual_seed(0)
    model = UFVNet("1a").eval()
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        out = model(x, mode="sr", rate=torch.tensor([1 / 16, 0.5]))
        ref0 = (model.anchors[0](x[:1] * 2 - 1) + 1) / 2
        ref2 = (model.anchors[2](x[1:] * 2 - 1) + 1) / 2
    assert out["anchor"].tolist() == [0, 2]
    assert torch.allclose(out["sr"][:1], ref0, atol=1e-5) and torch.allclose(out["sr"][1:], ref2, atol=1e-5)


def test_stage1_super_resolves_under_autocast():
    """Found on an H200 (benchmarks/test_bench_gpu_inference.py): the output buffer took the input's float32
    while autocast's generators return bf16/fp16, and the index-put refused the mix. CPU bf16 autocast has
    the same rule."""
    torch.manual_seed(0)
    model = UFVNet("1a").eval()
    x = torch.rand(2, 3, 64, 64)  # any size the generators' 5 downsamplings leave > 1 px
    rate = torch.tensor([1 / 16, 0.5])
    with torch.no_grad():
        ref = model(x, mode="sr", rate=rate)["sr"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, mode="sr", rate=rate)
    assert out["anchor"].tolist() == [0, 2] and out["sr"].dtype == torch.bfloat16
    assert out["sr"].shape == ref.shape and (out["sr"].float() - ref).abs().max() < 0.05


def test_regressor_fc_width_changes_only_the_hidden_fc_layers():
    import torchvision

    from fsrbench_baselines.ufvnet.regressor import WeightRegressor

    ref = torchvision.models.alexnet(weights=None).state_dict()
    full, small = WeightRegressor(3), WeightRegressor(3, fc_width=256)
    assert list(small.net.state_dict()) == list(ref)
    for k, v in small.net.state_dict().items():
        if k.startswith("features."):
            assert v.shape == ref[k].shape, k
    assert small.net.classifier[1].weight.shape == (256, 9216)
    assert small.net.classifier[4].weight.shape == (256, 256)
    assert small.net.classifier[6].weight.shape == (1000, 256)
    assert full.net.classifier[1].weight.shape == (4096, 9216)
    assert small(torch.rand(2, 3, 128, 128)).shape == (2, 3)


def test_inputs_prepared_in_the_data_workers_equal_the_in_loss_degradation():
    """prepare_sample (run per sample in the engine's data workers) makes exactly the anchor-rate and sampled-rate
    inputs that training_loss makes from the batch when called without them."""
    from fsrbench.imageio import to_tensor
    from fsrbench.train.data import u8_to_float

    m = UFVNetMethod()
    hr = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    cfg = {"stage": "1", "anchors": [0.25, 0.5], "train_rates": [0.1875]}
    out = m.prepare_sample({"hr": hr, "priors": {}, "scale": 8}, np.random.default_rng(0), cfg)
    assert set(out) == {"ufvnet_anchor0", "ufvnet_anchor1", "ufvnet_input", "ufvnet_size"}
    hr_t = to_tensor(hr)
    for k, side in ((0, 32), (1, 64)):
        assert torch.equal(u8_to_float(torch.from_numpy(out[f"ufvnet_anchor{k}"][None].copy())), degrade_batch(hr_t, [side]))
    assert int(out["ufvnet_size"]) == 24
    assert torch.equal(u8_to_float(torch.from_numpy(out["ufvnet_input"][None].copy())), degrade_batch(hr_t, [24]))
    assert m.prepare_sample({"hr": hr, "priors": {}, "scale": 8}, np.random.default_rng(0), {"stage": "1a",
                                                                                            "anchors": [0.5]}).keys() == {"ufvnet_anchor0"}
