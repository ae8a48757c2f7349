"""Shared baseline blocks: prior rendering, DIC's 68→5 attention maps, parsing targets, hourglasses,
recipe configs (every [CHOICE] a key; `smoke` inherits `default`)."""
from __future__ import annotations

import math

import pytest
import torch

from fsrbench.recipes import method_presets
from fsrbench.train.loop import make_optimizer, make_scheduler
from fsrbench_baselines import common
from fsrbench_baselines.dic.method import DICMethod
from fsrbench_baselines.edsr.method import EDSRMethod
from fsrbench_baselines.fsrnet.method import FSRNetMethod
from fsrbench_baselines.sparnet.method import SPARNetLightMethod, SPARNetMethod
from fsrbench_baselines.srcnn.method import SRCNNMethod

torch.set_num_threads(1)
METHODS = (SRCNNMethod, EDSRMethod, SPARNetMethod, SPARNetLightMethod, FSRNetMethod, DICMethod)


def test_heatmaps_peak_at_scaled_landmark():
    """A landmark at (64, 32) in 128-px coordinates peaks at (x=16, y=8) of a 32² grid; a neighbour one
    grid pixel away is exp(-1/2) for sigma 1 (DIC's generate_gt)."""
    lm = torch.tensor([[[64.0, 32.0], [4.0, 124.0]]])
    maps = common.heatmaps_from_landmarks(lm, 32, 1.0)
    assert maps.shape == (1, 2, 32, 32)
    assert float(maps[0, 0, 8, 16]) == pytest.approx(1.0)
    assert float(maps[0, 0, 8, 17]) == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert float(maps[0, 0, 9, 17]) == pytest.approx(math.exp(-1.0), rel=1e-6)
    assert int(maps[0, 1].argmax()) == 31 * 32 + 1  # (x=1, y=31)


def test_merge_heatmaps_5_hand_case():
    h = torch.zeros(1, 68, 4, 4)
    h[0, 36, 0, 0] = 2.0   # left eye, peak 2 -> normalised to 1
    h[0, 37, 0, 0] = 0.01  # left eye, peak below the 0.05 floor -> 0.01 / 0.05 = 0.2
    h[0, 30, 1, 1] = 0.5   # nose -> 1
    h[0, 60, 2, 2] = 1.0   # mouth
    h[0, 5, 3, 3] = 0.25   # jaw (silhouette)
    h[0, 20, 3, 3] = 0.5   # brow (silhouette) -> 1 + 1 = 2 at (3, 3)
    out = common.merge_heatmaps_5(h)
    assert out.shape == (1, 5, 4, 4)
    assert float(out[0, 0, 0, 0]) == pytest.approx(1.2)
    assert float(out[0, 1].abs().sum()) == 0.0  # right eye empty
    assert float(out[0, 2, 1, 1]) == pytest.approx(1.0)
    assert float(out[0, 3, 2, 2]) == pytest.approx(1.0)
    assert float(out[0, 4, 3, 3]) == pytest.approx(2.0)
    assert float(out.sum()) == pytest.approx(1.2 + 1 + 1 + 2)


def test_parsing_onehot():
    lab = torch.tensor([[[0, 1], [9, 6]]], dtype=torch.uint8)
    oh = common.parsing_onehot(lab, 11, 2)
    assert oh.shape == (1, 11, 2, 2)
    assert oh.sum(1).eq(1).all()
    assert oh[0, 9, 1, 0] == 1 and oh[0, 6, 1, 1] == 1 and oh[0, 10].sum() == 0
    big = lab.repeat_interleave(4, 1).repeat_interleave(4, 2)  # 8x8 blocks -> nearest back to 2x2
    assert torch.equal(common.parsing_onehot(big, 11, 2), oh)
    with pytest.raises(ValueError):
        common.parsing_onehot(torch.full((1, 2, 2), 11, dtype=torch.uint8), 11, 2)


def test_fusion_attention_sums_groups():
    """With a single non-zero attention map, DIC's fusion returns exactly that group's features."""
    fuse = common.FeatureHeatmapFusion(4, 5, 1)
    feat = torch.randn(1, 4, 3, 3)
    maps = torch.full((1, 5, 3, 3), -1e4)
    maps[:, 2] = 0.0
    with torch.no_grad():
        groups = fuse.res(fuse.conv_in(feat)).view(1, 5, 4, 3, 3)
        out = fuse(feat, maps)
    torch.testing.assert_close(out, groups[:, 2])


def test_hourglass_and_feedback_shapes():
    hg = common.Hourglass(3, 16, common.PreActBottleneck)
    assert hg(torch.randn(1, 16, 16, 16)).shape == (1, 16, 16, 16)
    fb = common.FeedbackHourglass(32, 68, depth=2)
    heat, hidden = fb(torch.randn(1, 3, 64, 64))
    assert heat.shape == (1, 68, 16, 16) and hidden.shape == (1, 32, 16, 16)
    heat2, _ = fb(torch.randn(1, 3, 64, 64), hidden)
    assert heat2.shape == heat.shape


def test_projection_core_geometry():
    core = common.SRFBNProjectionCore(8, 3, 4)
    assert core(torch.randn(1, 8, 8, 8)).shape == (1, 8, 8, 8)
    assert common.projection_geometry(8) == (12, 8, 2)
    with pytest.raises(ValueError):
        common.projection_geometry(5)


RECIPE_KEYS = {"batch_size", "optimizer", "lr", "weight_decay", "lr_milestones", "lr_gamma", "flip"}  # + steps | epochs
CHOICE_KEYS = {
    "srcnn": {"mapping_kernel", "color", "padding", "optimizer", "lr", "batch_size", "steps"},
    "edsr": {"variant", "patch", "flip", "lr_milestones", "steps"},
    "sparnet": {"res_depth", "attention", "random_scale", "epochs"},
    "sparnet-light": {"res_depth", "attention"},
    "fsrnet": {"keypoints", "parsing_classes", "hourglass_depth", "output_tanh", "heatmap_sigma",
               "prior_weight", "steps"},
    "dic": {"x4_adaptation", "hg_pretrain_iterations", "hg_freeze_iterations", "hg_init", "heatmap_weight"},
}


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
def test_configs(cls):
    default, smoke = method_presets(cls)["default"], method_presets(cls)["smoke"]
    assert RECIPE_KEYS <= set(default), RECIPE_KEYS - set(default)
    assert CHOICE_KEYS[cls.name] <= set(default)
    assert set(default) <= set(smoke)  # smoke inherits every default key
    assert default.get("steps") or default.get("epochs")
    assert smoke["steps"] and smoke["steps"] <= 200 and smoke["batch_size"] <= 8
    assert "budget" in smoke
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))], default)
    sched = make_scheduler(opt, default, int(default.get("steps") or 1))
    assert opt.param_groups[0]["lr"] == pytest.approx(float(default["lr"]))
    assert sched is not None


def test_recipes_match_methods_md():
    """METHODS.md §0.6 recipe table."""
    srcnn, edsr, sparnet = (method_presets(c)["default"] for c in (SRCNNMethod, EDSRMethod, SPARNetMethod))
    fsrnet, dic = (method_presets(c)["default"] for c in (FSRNetMethod, DICMethod))
    assert (srcnn["optimizer"], srcnn["lr"], srcnn["batch_size"], srcnn["steps"]) == ("adam", 1e-4, 16, 150000)
    assert (edsr["loss"], edsr["lr"], edsr["lr_milestones"], edsr["batch_size"]) == ("l1", 1e-4, [100000], 16)
    assert (sparnet["lr"], list(sparnet["betas"]), sparnet["batch_size"], sparnet["epochs"]) == (2e-4, [0.9, 0.99], 32, 20)
    assert (fsrnet["optimizer"], fsrnet["lr"], fsrnet["batch_size"]) == ("rmsprop", 2.5e-4, 14)
    assert (dic["lr"], dic["batch_size"], dic["heatmap_weight"]) == (1e-4, 8, 0.1)
    # the code's 10/20/40/80 k milestones and 150 k iterations, after the hourglass pre-training
    pre = dic["hg_pretrain_iterations"]
    assert [m - pre for m in dic["lr_milestones"]] == [10000, 20000, 40000, 80000]
    assert dic["steps"] - pre == 150000 and dic["hg_freeze_iterations"] == 2000
