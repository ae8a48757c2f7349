"""W-Net (METHODS.md §9): parameter counts, module sizes, shapes, checkpointing equivalence, parsing targets,
region masks, loss terms and one optimisation step. CPU, small widths/batches where the test allows."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_adam_step_lowers_loss, require_vgg16
import torch
from PIL import Image

from fsrbench.api import Batch, TrainBatch, Unavailable
from fsrbench.recipes import method_presets
from fsrbench_baselines.wnet.method import WNetMethod
from fsrbench_baselines.wnet.lpf import LPF
from fsrbench_baselines.wnet.method import parsing_target, region_masks
from fsrbench_baselines.wnet.model import build_wnet
from fsrbench_baselines.wnet.parsing_block import ParsingBlock
from fsrbench_baselines.wnet.scab import SCAB

TINY = {"channels": 16, "parsing_branch": 8, "max_up": 2}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def ca(c: int, r: int = 16) -> int:
    return conv(c, c // r, 1) + conv(c // r, c, 1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")




# ------------------------------------------------------------------------------------------------
def test_parameter_counts_match_spec():
    # METHODS §9.3: 6,159,350 in total, Parsing Block 433,965
    net = build_wnet({})
    assert n_params(net) == 6_159_350
    assert n_params(net.parsing) == 433_965


def test_module_sizes_from_the_layer_tables():
    c = 64
    # A, B, P' convs; CA + SA; conv after the attention sum; PA 1x1; fuse1 3x3 (2C->C); fuse2 1x1
    lpf = 2 * conv(c, c) + conv(1, c) + ca(c) + conv(2, 1, 7) + conv(c, c) + conv(c, c, 1) + conv(2 * c, c) + conv(c, c, 1)
    assert n_params(LPF(c)) == lpf
    mdta = conv(c, 3 * c, 1) + (3 * c * 9 + 3 * c) + 4 + conv(c, c, 1)
    assert n_params(SCAB(c)) == 2 * conv(c, c) + ca(c) + mdta
    bottleneck = conv(c, c // 2, 1) + conv(c // 2, c // 2) + conv(c // 2, c, 1)
    parsing = (conv(3, c) + 2 * 2 * conv(c, c) + 13 * bottleneck + conv(c, 32, 1) + 2 * conv(c, 32) + conv(96, 64)
               + conv(32, 16) + ca(112) + conv(2, 1, 7) + conv(112, c, 1) + conv(c, 3))
    assert n_params(ParsingBlock(c)) == parsing


def test_switches_change_counts_as_expected():
    c = 64
    full = n_params(build_wnet({}))
    lpf, up, down = n_params(LPF(c)), conv(c, 4 * c) + 2 * c, conv(4 * c, c) + 2 * c
    # max_up 8 -> 4: one Up, one Down, two LPFs and two 3x3 convs fewer
    assert n_params(build_wnet({"max_up": 4})) == full - (2 * lpf + up + down + 2 * conv(c, c))
    assert n_params(build_wnet({"max_up": 2})) == full - 2 * (2 * lpf + up + down + 2 * conv(c, c))
    assert n_params(build_wnet({"pre_encoder_conv": False})) == full - conv(c, c)
    assert sum(isinstance(m, LPF) for m in build_wnet({}).modules()) == 6 + 4  # W-part + encoder
    assert sum(isinstance(m, SCAB) for m in build_wnet({}).modules()) == 16


@pytest.mark.parametrize("scale", [4, 8])
def test_forward_shapes_through_the_method(scale):
    m = WNetMethod(**TINY)
    assert m.name == "wnet" and m.input == "upsampled" and m.priors == () and "parsing" in m.train_priors
    net = m.build_model(scale, method_presets(m)["default"]).eval()
    up = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        sr = m.forward_sr(net, Batch(ids=["a", "b"], lr=None, upsampled=up, scale=scale))
        _, parsing = net(up)
    assert sr.shape == (2, 3, 128, 128) and parsing.shape == (2, 3, 128, 128) and torch.isfinite(sr).all()


def test_full_width_feature_sizes_reach_8x_the_input():
    """Real widths on a 16x16 input: the W-part peaks at 8x the input (1024² for a 128² input)."""
    net = build_wnet({}).eval()
    sizes = []
    for stage in net.w_stages:
        stage.register_forward_hook(lambda mod, inp, out: sizes.append(out.shape[-1]))
    for level in net.encoder:
        level.register_forward_hook(lambda mod, inp, out: sizes.append(out.shape[-1]))
    with torch.no_grad():
        sr, _ = net(torch.rand(1, 3, 16, 16))
    assert sr.shape == (1, 3, 16, 16)
    assert sizes == [32, 64, 128, 64, 32, 16, 8, 4, 2, 1]


@pytest.mark.parametrize("inner", [True, False])
def test_checkpointing_gives_the_same_gradients_and_bn_stats(inner):
    torch.manual_seed(0)
    a = build_wnet({**TINY, "checkpoint": False})
    b = build_wnet({**TINY, "checkpoint": True, "checkpoint_lpf": inner})
    assert all(m.inner_checkpoint == inner for m in b.modules() if isinstance(m, LPF))
    assert not any(m.inner_checkpoint for m in a.modules() if isinstance(m, LPF))
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 32, 32)
    for net in (a, b):
        sr, par = net(x)
        (sr.square().mean() + par.mean()).backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-4, atol=1e-6), n
    # running statistics moved exactly once in both (recomputation does not update them again)
    for (n, ba), (_, bb) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.allclose(ba.float(), bb.float(), atol=1e-6), n


# ------------------------------------------------------------------------------------------------
def test_parsing_target_is_down_up_skin_mask():
    lab = np.zeros((2, 128, 128), np.uint8)
    lab[0] = 1  # all skin
    lab[1, 32:96, 32:96] = 1  # a skin square with features inside
    lab[1, 50:60, 40:60] = 4
    t = parsing_target(lab, 8)
    assert t.shape == (2, 3, 128, 128)
    assert torch.allclose(t[0], torch.ones_like(t[0]))
    # independent reference: PIL bicubic 128 -> 16 -> 128 on the uint8 mask
    mask = np.where(lab[1] == 1, 255, 0).astype(np.uint8)
    ref = Image.fromarray(mask).resize((16, 16), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
    assert np.abs(t[1, 0].numpy() * 255 - np.asarray(ref, np.float64)).max() <= 1.0
    assert abs(float(t[1].mean()) - (64 * 64 - 200) / 128**2) < 0.02  # bicubic keeps the mean
    assert float(t.min()) >= 0 and float(t.max()) <= 1


def test_region_masks_select_the_fsrbench_labels():
    lab = torch.zeros(1, 128, 128, dtype=torch.uint8)
    lab[0, 0, :10] = 4  # l_eye
    lab[0, 1, :5] = 5  # r_eye
    lab[0, 2, :7] = 2  # l_brow
    lab[0, 3, :3] = 6  # nose
    lab[0, 4, :2] = 7
    lab[0, 5, :4] = 8
    lab[0, 6, :6] = 9  # mouth
    lab[0, 7, :50] = 1  # skin: in no region
    m = region_masks(lab, method_presets(WNetMethod)["default"]["regions"])
    assert m.shape == (4, 1, 1, 128, 128)
    assert m.sum((1, 2, 3, 4)).tolist() == [15, 7, 3, 12]  # eyes, eyebrows, nose, mouth


# ------------------------------------------------------------------------------------------------
def _train_batch(b: int = 1, scale: int = 8) -> TrainBatch:
    g = torch.Generator().manual_seed(0)
    hr = torch.nn.functional.interpolate(torch.rand(b, 3, 8, 8, generator=g), size=(128, 128), mode="bicubic",
                                         align_corners=False).clamp(0, 1)
    up = torch.nn.functional.interpolate(torch.nn.functional.interpolate(hr, size=16, mode="area"), size=(128, 128),
                                         mode="bicubic", align_corners=False).clamp(0, 1)
    lab = torch.zeros(b, 128, 128, dtype=torch.uint8)
    lab[:, 20:110, 24:104] = 1
    lab[:, 40:50, 35:55], lab[:, 40:50, 73:93] = 4, 5
    lab[:, 32:36, 35:55], lab[:, 32:36, 73:93] = 2, 3
    lab[:, 55:75, 58:70] = 6
    lab[:, 82:88, 48:80], lab[:, 88:90, 48:80], lab[:, 90:96, 48:80] = 7, 8, 9
    return TrainBatch(hr=hr, lr=None, upsampled=up, scale=scale, priors={"parsing": lab})


TERMS = {"pixel_weight": "mse", "parsing_weight": "parsing", "key_weight": "key_mse"}


@pytest.mark.parametrize("term", list(TERMS) + ["perceptual"])
def test_each_loss_term_has_finite_gradients(term):
    m = WNetMethod(**TINY)
    cfg = {**method_presets(m)["default"], **{k: 0.0 for k in TERMS}}
    if term == "perceptual":
        require_vgg16()
        cfg.update(key_weight=1.0, perceptual_weight=1.0)
    else:
        cfg.update({term: 1.0, "perceptual_weight": 0.0})
    torch.manual_seed(0)
    net = m.build_model(8, cfg)
    loss, log = m.training_loss(net, _train_batch(), cfg)
    key = "key_perceptual" if term == "perceptual" else TERMS[term]
    assert key in log and log[key] > 0 and torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for g in grads.values())
    if term == "parsing_weight":  # only the Parsing Block predicts the parsing map
        assert all(n.startswith("parsing.") for n, g in grads.items() if float(g.abs().sum()) > 0)


def test_missing_parsing_prior_is_a_clear_error():
    m = WNetMethod(**TINY)
    cfg = method_presets(m)["smoke"]
    net = m.build_model(4, cfg)
    tb = _train_batch()
    tb.priors.clear()
    with pytest.raises(ValueError, match="parsing"):
        m.training_loss(net, tb, cfg)


def test_one_optimizer_step_lowers_the_loss():
    require_vgg16()
    m = WNetMethod(**TINY)
    cfg = method_presets(m)["smoke"]
    torch.manual_seed(0)
    net = m.build_model(8, cfg)
    assert_one_adam_step_lowers_loss(m, net, _train_batch(b=2), cfg)


def test_configs():
    d, s = method_presets(WNetMethod)["default"], method_presets(WNetMethod)["smoke"]
    assert d["max_up"] == 8 and d["channels"] == 64 and d["batch_size"] == 4 and d["lr"] == 1e-4
    assert (d["pixel_weight"], d["parsing_weight"], d["key_weight"]) == (1.0, 1.0, 0.5)
    assert s["checkpoint"] and s["steps"] < d["steps"] and s["regions"] == d["regions"]
    e = method_presets(WNetMethod)["cpu-evidence"]
    assert e["channels"] == 64 and e["max_up"] == 2 and e["tail_init"] == "zero" and e["steps"] == 150
    assert d["tail_init"] == "torch"


def test_zero_tail_starts_at_the_bicubic_input_and_still_learns():
    torch.manual_seed(0)
    net = build_wnet({"channels": 16, "parsing_branch": 8, "max_up": 2, "tail_init": "zero"})
    x = torch.rand(2, 3, 64, 64)
    sr, _ = net(x)
    assert torch.equal(sr, x)  # SR = 0 + input at initialisation
    # the tail's own gradient is not zero (features x upstream error), so one step moves the output
    loss = ((sr - torch.rand_like(x)) ** 2).mean()
    loss.backward()
    assert net.tail.weight.grad.abs().sum() > 0
    default = build_wnet({"channels": 16, "parsing_branch": 8, "max_up": 2})
    assert not torch.equal(default(x)[0], x)
    with pytest.raises(ValueError, match="global_residual"):
        build_wnet({"channels": 16, "parsing_branch": 8, "max_up": 2, "tail_init": "zero", "global_residual": False})
    with pytest.raises(ValueError, match="tail_init"):
        build_wnet({"channels": 16, "parsing_branch": 8, "max_up": 2, "tail_init": "ones"})


def test_parsing_target_prepared_in_the_data_workers_equals_the_in_loss_one():
    from fsrbench.data.priors import parsing_from_landmarks68
    from face_shapes import face68 as _face68

    m = WNetMethod()
    lab = parsing_from_landmarks68(_face68())
    out = m.prepare_sample({"priors": {"parsing": lab}, "scale": 8}, np.random.default_rng(0), {"skin_label": 1})
    prepared = torch.from_numpy(out["wnet_parsing_target"][None].copy()).float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.equal(prepared, parsing_target(torch.from_numpy(lab[None]), 8, 1, 3))
    assert m.prepare_sample({"priors": {}, "scale": 8}, np.random.default_rng(0), {}) == {}
