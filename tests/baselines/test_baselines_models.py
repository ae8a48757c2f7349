"""Baseline architectures: parameter counts against METHODS.md's derived numbers, output shapes, and
value-range conventions checked against independent references (bilinear upsampling, DIV2K mean)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fsrbench.recipes import method_config_path, method_presets
from fsrbench_baselines.common import count_parameters
from fsrbench_baselines.dic.method import DICMethod
from fsrbench_baselines.dic.model import DIC
from fsrbench_baselines.edsr.method import EDSRMethod
from fsrbench_baselines.edsr.model import EDSR
from fsrbench_baselines.fsrnet.method import FSRNetMethod
from fsrbench_baselines.fsrnet.model import FSRNet
from fsrbench_baselines.sparnet.method import SPARNetLightMethod, SPARNetMethod
from fsrbench_baselines.sparnet.model import SPARNet
from fsrbench_baselines.srcnn.method import SRCNNMethod
from fsrbench_baselines.srcnn.model import SRCNN

torch.set_num_threads(1)


# --- parameter counts (METHODS.md §0.5, §2-6; [derived] there independently of this code) ----------
@pytest.mark.parametrize("build, expected", [
    (lambda: SRCNN(5), 69_251),
    (lambda: SRCNN(1), 20_099),
    (lambda: EDSR(4), 1_517_571),
    (lambda: EDSR(8), 1_665_283),
    (lambda: EDSR(4, 32, 256, 0.1), 43_089_923),
    (lambda: EDSR(8, 32, 256, 0.1), 45_450_243),
    (lambda: SPARNet(10, "2d"), 10_518_867),
    (lambda: SPARNet(10, "3d"), 11_562_083),
    (lambda: SPARNet(1, "3d"), 5_242_211),
    (lambda: FSRNet(68, 11), 3_142_485),
    (lambda: FSRNet(194, 11), 3_158_739),
    (lambda: DIC(8), 21_803_849),
    (lambda: DIC(4), 17_389_434),
], ids=["srcnn-955", "srcnn-915", "edsr-base-x4", "edsr-base-x8", "edsr-full-x4", "edsr-full-x8",
        "sparnet", "sparnet-attn3d", "sparnet-light-attn3d", "fsrnet-68", "fsrnet-194", "dic-x8", "dic-x4"])
def test_parameter_counts(build, expected):
    assert count_parameters(build()) == expected


def test_dic_hourglass_share():
    model = DIC(8)
    assert count_parameters(model.hourglass) == 11_999_172
    assert count_parameters(model) - count_parameters(model.hourglass) == 9_804_677  # "SR part 9.80 M"


def test_methods_build_paper_size_from_default_config():
    """The registered classes + their `default` presets give the paper-size models."""
    cases = [(SRCNNMethod, 8, 69_251), (EDSRMethod, 4, 1_517_571), (SPARNetMethod, 8, 10_518_867),
             (SPARNetLightMethod, 8, 5_242_211), (FSRNetMethod, 8, 3_142_485), (DICMethod, 8, 21_803_849)]
    for cls, scale, expected in cases:
        m = cls()
        assert count_parameters(m.build_model(scale, method_presets(m)["default"])) == expected, cls.name
    full = EDSRMethod().build_model(8, {**method_presets(EDSRMethod)["default"], "variant": "full"})
    assert count_parameters(full) == 45_450_243


def test_method_declarations():
    """Input kinds and scales per METHODS.md §0.5; priors only for training."""
    expect = {SRCNNMethod: "upsampled", EDSRMethod: "lr", SPARNetMethod: "upsampled",
              SPARNetLightMethod: "upsampled", FSRNetMethod: "upsampled", DICMethod: "lr"}
    for cls, inp in expect.items():
        assert cls.input == inp and cls.scales == (4, 8) and cls.trainable and cls.priors == ()
        assert method_config_path(cls).is_file()
    assert FSRNetMethod.train_priors == ("landmarks68", "parsing")
    assert DICMethod.train_priors == ("landmarks68",)
    names = {c.name for c in expect}
    assert names == {"srcnn", "edsr", "sparnet", "sparnet-light", "fsrnet", "dic"}


def test_registry_round_trip():
    from fsrbench.registry import methods

    methods.register("sparnet-light-test", SPARNetLightMethod)
    assert methods.get("sparnet-light-test") is SPARNetLightMethod


# --- output shapes at x4 and x8 (full-size models, batch 1) --------------------------------------------
def _eval_batch(scale: int, b: int = 1):
    from fsrbench.api import Batch

    g = torch.Generator().manual_seed(scale)
    lr = torch.rand(b, 3, 128 // scale, 128 // scale, generator=g)
    up = F.interpolate(lr, size=128, mode="bicubic", align_corners=False).clamp(0, 1)
    return Batch(ids=[f"i{i}" for i in range(b)], lr=lr, upsampled=up, scale=scale)


@pytest.mark.parametrize("cls", [SRCNNMethod, EDSRMethod, SPARNetMethod, FSRNetMethod, DICMethod],
                         ids=lambda c: c.name)
@pytest.mark.parametrize("scale", [4, 8])
def test_output_shape(cls, scale):
    torch.manual_seed(0)
    m = cls()
    model = m.build_model(scale, method_presets(m)["default"]).eval()
    with torch.no_grad():
        out = m.forward_sr(model, _eval_batch(scale))
    assert out.shape == (1, 3, 128, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_build_rejects_unsupported_scale():
    for cls in (SRCNNMethod, EDSRMethod, SPARNetMethod, FSRNetMethod, DICMethod):
        with pytest.raises(ValueError):
            cls().build_model(2, method_presets(cls)["default"])


def test_fsrnet_prior_maps_shapes():
    model = FSRNet().eval()
    with torch.no_grad():
        y_c, heat, pars, out = model(torch.rand(1, 3, 128, 128))
    assert y_c.shape == out.shape == (1, 3, 128, 128)
    assert heat.shape == (1, 68, 64, 64) and pars.shape == (1, 11, 64, 64)


def test_dic_returns_every_step():
    model = DIC(4, features=16, hg_features=32).eval()  # narrow widths: the step logic is the same
    with torch.no_grad():
        srs, heats = model(torch.rand(1, 3, 32, 32))
    assert len(srs) == len(heats) == 4
    assert all(h.shape == (1, 68, 32, 32) for h in heats)


# --- normalisation conventions against independent references -------------------------------------
def test_dic_zero_residual_gives_bilinear_upsampling():
    """With the reconstruction conv zeroed, DIC's output is the bilinear ×s upsampling of the LR: the
    mean subtraction and re-addition must cancel exactly."""
    m = DICMethod()
    model = m.build_model(4, method_presets(m)["default"]).eval()
    torch.nn.init.zeros_(model.reconstruct[-1].weight)
    torch.nn.init.zeros_(model.reconstruct[-1].bias)
    batch = _eval_batch(4)
    with torch.no_grad():
        out = m.forward_sr(model, batch)
    ref = F.interpolate(batch.lr, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_edsr_zero_tail_outputs_div2k_mean():
    m = EDSRMethod()
    model = m.build_model(8, method_presets(m)["default"]).eval()
    torch.nn.init.zeros_(model.tail[-1].weight)
    torch.nn.init.zeros_(model.tail[-1].bias)
    with torch.no_grad():
        out = m.forward_sr(model, _eval_batch(8))
    ref = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand(1, 3, 128, 128)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_sparnet_zero_output_maps_to_mid_grey():
    """SPARNet works in [-1,1]: a zero network output is 0.5 in the harness range."""
    m = SPARNetLightMethod()
    model = m.build_model(8, method_presets(m)["default"]).eval()
    torch.nn.init.zeros_(model.out_conv.conv.weight)
    torch.nn.init.zeros_(model.out_conv.conv.bias)
    with torch.no_grad():
        out = m.forward_sr(model, _eval_batch(8))
    torch.testing.assert_close(out, torch.full_like(out, 0.5), atol=1e-7, rtol=0)


def test_sparnet_hourglass_depths_and_shortcuts():
    """Layer structure of the released SPARNet (METHODS.md §6.2): hourglass depths 4,3,2 | 2.. | 3,4,5."""
    model = SPARNet(10, "2d")
    depths = [b.attention.depth for b in list(model.encoder)[1:]] + [b.attention.depth for b in model.body] + \
        [b.attention.depth for b in model.decoder]
    assert depths == [4, 3, 2] + [2] * 10 + [3, 4, 5]
    chans = [(b.conv1.conv.in_channels, b.conv2.conv.out_channels) for b in list(model.encoder)[1:]]
    assert chans == [(32, 64), (64, 128), (128, 128)]
    assert isinstance(model.body[0].shortcut, torch.nn.Identity)
    assert model.decoder[-1].attention.out.conv.out_channels == 1
    assert SPARNet(1, "3d").decoder[-1].attention.out.conv.out_channels == 32
