"""AffectSRNet (METHODS.md §7): edge set, parameter counts, shapes, MSAF, landmark fallback, ESRGAN init,
loss terms and one optimisation step. CPU, small batches."""
from __future__ import annotations

import pickle
import warnings

import pytest
from conftest import assert_one_adam_step_lowers_loss, require_vgg16
import torch

from fsrbench.api import Batch, TrainBatch, Unavailable

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

from fsrbench.recipes import method_config_path, method_presets
from fsrbench_baselines.affectsrnet.method import AffectSRNetMethod, AffectSRNetRRDBINMethod, AffectSRNetRRDBMethod  # noqa: E402
from fsrbench_baselines.affectsrnet.method import mean_shape, normalized_landmarks  # noqa: E402
from fsrbench_baselines.affectsrnet.model import (  # noqa: E402
    AffectSRNet, build_affectsrnet, edge_index_from_polylines, load_esrgan, load_polylines)
from fsrbench_baselines.affectsrnet.msaf import MSAFBlock  # noqa: E402


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _landmarks(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean_shape().unsqueeze(0).repeat(b, 1, 1) * 128 + torch.randn(b, 478, 3, generator=g)


# ------------------------------------------------------------------------------------------------
def test_edge_set_matches_spec_counts():
    lines = load_polylines()
    assert len(lines) == 19
    assert sum(len(v) - 1 for v in lines.values()) == 178  # consecutive pairs (METHODS §7.2)
    ei = edge_index_from_polylines(lines)
    assert ei.shape == (2, 2 * 170)  # 170 unique undirected edges, both directions
    assert len(set(ei.flatten().tolist())) == 172  # nodes covered
    # each direction present
    pairs = set(zip(ei[0].tolist(), ei[1].tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    with_outline = edge_index_from_polylines(load_polylines(include_optional=("face_outline",)))
    assert with_outline.shape[1] == 2 * 206 and len(set(with_outline.flatten().tolist())) == 206


def test_parameter_counts_match_spec():
    # METHODS §7.3: 6,632,135 (x4) / 6,669,063 (x8)
    assert n_params(build_affectsrnet(4, {})) == 6_632_135
    assert n_params(build_affectsrnet(8, {})) == 6_669_063


@pytest.mark.parametrize("scale", [4, 8])
def test_ablation_switches_change_counts_as_expected(scale):
    nf, gc, nb, n_up = 64, 32, 8, {4: 2, 8: 3}[scale]
    rdb = sum(conv(nf + i * gc, gc) for i in range(4)) + conv(nf + 4 * gc, nf)
    backbone = conv(3, nf) + nb * 3 * rdb + conv(nf, nf) * (1 + n_up + 1) + conv(nf, 3)
    inorm = nb * 3 * (4 * 2 * gc + 2 * nf)
    gcn = sum(a * b + b for a, b in [(3, 64), (64, 128), (128, 256), (256, 512)]) + 512 * 16 * 64 + 16 * 64
    msaf = 3 * (5 * (4 * 16 + 16) + (16 * 4 + 4) + 8 + conv(80, 64, 1) + conv(16, 16, 1))
    assert n_params(build_affectsrnet(scale, {"variant": "rrdb"})) == backbone
    assert n_params(build_affectsrnet(scale, {"variant": "rrdb_in"})) == backbone + inorm
    assert n_params(build_affectsrnet(scale, {"variant": "full"})) == backbone + inorm + gcn + msaf
    # splat graph map: per-node Linear 512 -> 16 instead of 512 -> 16*8*8
    splat = n_params(build_affectsrnet(scale, {"graph_map": "splat"}))
    assert splat == backbone + inorm + gcn - (512 * 1024 + 1024) + (512 * 16 + 16) + msaf


@pytest.mark.parametrize("scale", [4, 8])
def test_forward_shapes_and_method_attributes(scale):
    m = AffectSRNetMethod()
    assert m.name == "affectsrnet" and m.input == "lr" and set(m.scales) == {4, 8}
    assert "landmarks478_lr" in m.priors and "landmarks478_hr" in m.train_priors
    torch.manual_seed(0)
    net = m.build_model(scale, method_presets(m)["default"]).eval()
    lr = torch.rand(2, 3, 128 // scale, 128 // scale)
    batch = Batch(ids=["a", "b"], lr=lr, upsampled=None, scale=scale, priors={"landmarks478_lr": _landmarks(2)})
    with torch.no_grad():
        sr = m.forward_sr(net, batch)
    assert sr.shape == (2, 3, 128, 128) and torch.isfinite(sr).all()
    assert m.last_landmark_fallback.tolist() == [False, False]


def test_ablation_methods_need_no_landmarks():
    assert AffectSRNetRRDBMethod.priors == () and AffectSRNetRRDBINMethod.priors == ()
    m = AffectSRNetRRDBMethod()
    net = m.build_model(8, method_presets(m)["smoke"]).eval()
    assert not net.use_graph
    with torch.no_grad():
        sr = m.forward_sr(net, Batch(ids=["a"], lr=torch.rand(1, 3, 16, 16), upsampled=None, scale=8))
    assert sr.shape == (1, 3, 128, 128)


def test_global_skip_is_bicubic_of_lr():
    """With the head zeroed the network output is exactly the bicubic x4 upsampling of the input."""
    net = build_affectsrnet(4, {"variant": "rrdb"}).eval()
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    lr = torch.rand(1, 3, 32, 32)
    ref = torch.nn.functional.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(net(lr), ref, atol=1e-6)


def test_instance_norm_after_every_rrdb_conv():
    net = build_affectsrnet(4, {"variant": "rrdb_in"})
    rdb = net.RRDB_trunk[0].RDB1
    for i in range(1, 6):
        norm = getattr(rdb, f"norm{i}")
        assert isinstance(norm, torch.nn.InstanceNorm2d) and norm.affine
    plain = build_affectsrnet(4, {"variant": "rrdb"})
    assert not any(isinstance(mod, torch.nn.InstanceNorm2d) for mod in plain.modules())


# ------------------------------------------------------------------------------------------------
def test_msaf_attention_softmax_across_blocks():
    torch.manual_seed(0)
    blk = MSAFBlock([64, 16], block_channel=16, reduction=4, block_dropout=0.2).eval()
    x1, x2 = torch.rand(3, 64, 5, 5) + 0.5, torch.rand(3, 16, 5, 5) + 0.5
    y1, y2 = blk([x1, x2])
    a1 = (y1 / x1).reshape(3, 4, 16, 5, 5)[..., 0, 0]  # attention per (block, channel)
    a2 = (y2 / x2).reshape(3, 1, 16, 5, 5)[..., 0, 0]
    att = torch.cat([a1, a2], 1)  # [B, 5 blocks, 16]
    assert torch.allclose(att.sum(1), torch.ones(3, 16), atol=1e-5)
    assert (att > 0).all()
    # attention is constant over space
    assert torch.allclose((y1 / x1).reshape(3, 4, 16, 25).std(-1), torch.zeros(3, 4, 16), atol=1e-5)


def test_msaf_pads_channels_and_drops_blocks_in_training():
    torch.manual_seed(0)
    blk = MSAFBlock([20, 16], block_channel=16).eval()  # 20 -> 2 blocks (zero-padded)
    y1, y2 = blk([torch.rand(2, 20, 4, 4), torch.rand(2, 16, 4, 4)])
    assert y1.shape == (2, 20, 4, 4) and y2.shape == (2, 16, 4, 4)
    blk = MSAFBlock([64, 16], block_channel=16, block_dropout=0.5).train()
    x = [torch.rand(64, 64, 2, 2) + 0.1, torch.rand(64, 16, 2, 2) + 0.1]
    y1, _ = blk(x)
    dropped = (y1.reshape(64, 4, 16, 4) == 0).all(-1).all(-1).float().mean()
    assert 0.3 < float(dropped) < 0.7


# ------------------------------------------------------------------------------------------------
def test_landmark_normalisation_and_fallback():
    px = _landmarks(3)
    px[1] = float("nan")
    lm, fb = normalized_landmarks({"landmarks478_lr": px}, "landmarks478_lr", 3, 128, "cpu")
    assert fb.tolist() == [False, True, False]
    assert torch.allclose(lm[0], px[0] / 128)
    assert torch.allclose(lm[1], mean_shape())
    lm, fb = normalized_landmarks({}, "landmarks478_lr", 2, 128, "cpu")
    assert fb.all() and torch.allclose(lm, mean_shape().expand(2, -1, -1))
    with pytest.raises(ValueError, match="missing"):
        normalized_landmarks({}, "landmarks478_lr", 2, 128, "cpu", fallback="error")
    # the mean shape is a plausible face: eyes (33, 263) above the mouth (13), about inside the frame
    ms = mean_shape()
    assert ((ms[:, :2] > -0.05) & (ms[:, :2] < 1.05)).all()  # tight crops: the forehead may touch the top
    assert ms[33, 1] < ms[13, 1] and ms[263, 1] < ms[13, 1] and ms[33, 0] < ms[263, 0]


def test_method_forward_uses_fallback_when_prior_missing():
    m = AffectSRNetMethod()
    net = m.build_model(8, method_presets(m)["default"]).eval()
    with torch.no_grad():
        sr = m.forward_sr(net, Batch(ids=["a"], lr=torch.rand(1, 3, 16, 16), upsampled=None, scale=8))
    assert sr.shape == (1, 3, 128, 128) and m.last_landmark_fallback.tolist() == [True]


# ------------------------------------------------------------------------------------------------
def _basicsr_state(nb: int = 23, scale: int = 4) -> dict[str, torch.Tensor]:
    """A random ESRGAN-shaped state dict with BasicSR key names (body.i.rdbk.convj, conv_body, conv_up1...)."""
    torch.manual_seed(1)
    src = AffectSRNet(scale, nb=nb, instance_norm=False, graph=False)
    out = {}
    for k, v in src.state_dict().items():
        k = k.replace("RRDB_trunk.", "body.").replace(".RDB", ".rdb").replace("trunk_conv.", "conv_body.")
        k = k.replace("HRconv.", "conv_hr.").replace("upconvs.0.", "conv_up1.").replace("upconvs.1.", "conv_up2.")
        out[k] = v.clone()
    return out


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_esrgan_init_loads_first_blocks(tmp_path, fmt):
    sd = _basicsr_state()
    path = tmp_path / f"esrgan.{fmt}"
    if fmt == "pth":
        torch.save({"params": sd}, path)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(path))
    m = AffectSRNetMethod()
    net = m.build_model(4, {**method_presets(m)["default"], "esrgan_init": str(path)})
    rep = net.esrgan_report
    own = net.state_dict()
    assert torch.equal(own["RRDB_trunk.7.RDB3.conv5.weight"], sd["body.7.rdb3.conv5.weight"])
    assert torch.equal(own["conv_first.weight"], sd["conv_first.weight"])
    assert torch.equal(own["trunk_conv.bias"], sd["conv_body.bias"])
    assert torch.equal(own["upconvs.1.weight"], sd["conv_up2.weight"])
    assert torch.equal(own["HRconv.weight"], sd["conv_hr.weight"])
    assert "RRDB_trunk.8.RDB1.conv1.weight" in rep["skipped"]  # blocks 9..23 are not used
    assert rep["loaded"] == 2 + 8 * 3 * 5 * 2 + 2 + 2 * 2 + 2 + 2  # convs: first, 8x3x5 dense, trunk, 2 up, HR, last
    # InstanceNorm affine parameters start at identity
    assert torch.equal(own["RRDB_trunk.0.RDB1.norm1.weight"], torch.ones(32))
    # what the training engine records in run.json ("init")
    import hashlib

    assert net.init_report == {"esrgan_init": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                               "loaded_tensors": rep["loaded"], "skipped": len(rep["skipped"]),
                               "kept_random": len(rep["kept_random"])}


def test_own_stage0_rrdb_checkpoint_initialises_every_backbone_tensor(tmp_path):
    """The offline ESRGAN stand-in (docs/evidence.md): weights of a trained `affectsrnet-rrdb` model, saved by
    the engine, load into the full network under its own names — every backbone tensor, nothing random."""
    from safetensors.torch import save_model

    rrdb = AffectSRNetRRDBMethod()
    src = rrdb.build_model(8, method_presets(rrdb)["smoke"])
    path = tmp_path / "best.safetensors"
    save_model(src, str(path))
    m = AffectSRNetMethod()
    net = m.build_model(8, {**method_presets(m)["smoke"], "esrgan_init": str(path)})
    assert net.esrgan_report["skipped"] == [] and net.esrgan_report["kept_random"] == []
    assert net.init_report["loaded_tensors"] == len(src.state_dict())
    assert torch.equal(net.state_dict()["RRDB_trunk.3.RDB2.conv4.weight"], src.state_dict()["RRDB_trunk.3.RDB2.conv4.weight"])


def test_esrgan_init_missing_file_fails_at_training(tmp_path):
    m = AffectSRNetMethod()
    cfg = {**method_presets(m)["smoke"], "esrgan_init": str(tmp_path / "nope.pth")}
    net = m.build_model(8, cfg)  # evaluation rebuilds from the training config: must not fail here
    tb = TrainBatch(hr=torch.rand(1, 3, 128, 128), lr=torch.rand(1, 3, 16, 16), upsampled=None, scale=8)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        m.training_loss(net, tb, cfg)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_esrgan_loader_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_esrgan(build_affectsrnet(4, {"variant": "rrdb"}), path)


# ------------------------------------------------------------------------------------------------
def _train_batch(scale: int = 8, b: int = 2, seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    # smooth images (a few low-frequency blobs) rather than white noise
    hr = torch.nn.functional.interpolate(torch.rand(b, 3, 8, 8, generator=g), size=(128, 128), mode="bicubic",
                                         align_corners=False).clamp(0, 1)
    lr = torch.nn.functional.interpolate(hr, size=(128 // scale,) * 2, mode="area")
    lm = _landmarks(b, seed)
    return TrainBatch(hr=hr, lr=lr, upsampled=None, scale=scale,
                      priors={"landmarks478_lr": lm, "landmarks478_hr": lm + 0.5})


TERMS = {"pix_weight": "l1", "hist_weight": "hist", "style_weight": "style", "node_weight": "node_l2"}


@pytest.mark.parametrize("term", list(TERMS))
def test_each_loss_term_has_finite_gradients(term):
    if term == "style_weight":
        require_vgg16()
    m = AffectSRNetMethod()
    cfg = {**method_presets(m)["default"], **{k: 0.0 for k in TERMS}, term: 1.0}
    torch.manual_seed(0)
    net = m.build_model(8, cfg)
    loss, log = m.training_loss(net, _train_batch(), cfg)
    assert TERMS[term] in log and torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for g in grads.values())
    if term == "node_weight":
        # only the GCN receives gradient (through both graphs with the default node_target: shared)
        assert all(n.startswith("gcn.") for n, g in grads.items() if float(g.abs().sum()) > 0)
        assert any(n.startswith("gcn.") for n in grads)
    else:
        assert float(net.conv_first.weight.grad.abs().sum()) > 0


def test_node_loss_skips_fallback_samples():
    from fsrbench_baselines.affectsrnet.losses import masked_node_l2

    z, zr = torch.ones(3, 4, 2), torch.zeros(3, 4, 2)
    z[1] = 10.0
    assert float(masked_node_l2(z, zr, torch.tensor([True, False, True]))) == pytest.approx(8.0)
    assert float(masked_node_l2(z, zr, None)) == pytest.approx((8 + 800 + 8) / 3)
    assert float(masked_node_l2(z, zr, torch.tensor([True, False, True]), "mean")) == pytest.approx(1.0)


def test_one_optimizer_step_lowers_the_loss():
    require_vgg16()
    m = AffectSRNetMethod()
    cfg = {**method_presets(m)["default"], "msaf_block_dropout": 0.0}
    torch.manual_seed(0)
    net = m.build_model(8, cfg)
    assert_one_adam_step_lowers_loss(m, net, _train_batch(b=2), cfg)


def test_registry_round_trip():
    from fsrbench.registry import methods

    # registered through the package's entry point, exactly like a third-party plugin
    assert methods.source("affectsrnet").startswith("entry point")
    assert methods.get("affectsrnet") is AffectSRNetMethod
    assert AffectSRNetMethod.trainable and method_config_path(AffectSRNetMethod).is_file()
    smoke = method_presets(AffectSRNetMethod)["smoke"]
    default = method_presets(AffectSRNetMethod)["default"]
    assert smoke["steps"] < default["steps"] and smoke["gcn_widths"] == default["gcn_widths"]


def test_landmark_settings_travel_with_the_model():
    """A model built with landmark_units=normalized reads normalised landmarks in forward_sr (evaluation
    rebuilds the model from the run's config)."""
    m = AffectSRNetMethod()
    cfg = method_presets(m)["default"]
    torch.manual_seed(0)
    a = m.build_model(8, cfg).eval()
    b = m.build_model(8, {**cfg, "landmark_units": "normalized"}).eval()
    b.load_state_dict(a.state_dict())
    lr = torch.rand(1, 3, 16, 16)
    px = _landmarks(1)
    with torch.no_grad():
        sa = m.forward_sr(a, Batch(ids=["x"], lr=lr, upsampled=None, scale=8, priors={"landmarks478_lr": px}))
        sb = m.forward_sr(b, Batch(ids=["x"], lr=lr, upsampled=None, scale=8, priors={"landmarks478_lr": px / 128}))
    assert torch.allclose(sa, sb, atol=1e-5)


def test_node_target_shared_vs_stopgrad_gradients():
    """node_target=shared: the loss gradient equals d/dW ||f(a)-f(b)||^2 through both graphs;
    stopgrad: only through the LR graph. Checked against autograd on the bare GCN (independent path)."""
    m = AffectSRNetMethod()
    base = {**method_presets(m)["default"], **{k: 0.0 for k in TERMS}, "node_weight": 1.0}
    batch = _train_batch()
    grads = {}
    for target in ("shared", "stopgrad"):
        cfg = {**base, "node_target": target}
        torch.manual_seed(0)
        net = m.build_model(8, cfg)
        loss, _ = m.training_loss(net, batch, cfg)
        loss.backward()
        grads[target] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    name = next(n for n in grads["shared"] if n.startswith("gcn."))
    assert not torch.allclose(grads["shared"][name], grads["stopgrad"][name])
    with pytest.raises(ValueError, match="node_target"):
        torch.manual_seed(0)
        net = m.build_model(8, base)
        m.training_loss(net, batch, {**base, "node_target": "bogus"})
