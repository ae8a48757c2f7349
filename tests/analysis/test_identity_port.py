"""dlib's face-recognition ResNet in PyTorch (``dlib-torch``) against dlib itself.

* the reader of dlib's serialization format on hand-encoded bytes (dlib/serialize.h, dlib/dnn/tensor.h) and on
  corrupted model files;
* descriptors of real faces (../shared/data) and of SR-like images (bicubic x4 / x8 round trips, HR box)
  within 1e-4 of ``dlib.face_recognition_model_v1.compute_face_descriptor`` (the reference), and the metric's
  SR-vs-HR cosine within 1e-6;
* batching, failures inside a batch, the identity metric's ``identity`` option and the batched path of
  ``face_common.descriptors``.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib")

from fsrbench.analysis.dlib_dnn import DlibFormatError, Reader, read_face_resnet  # noqa: E402
from fsrbench.api.face import FaceBox  # noqa: E402

DESC_TOL = 1e-4  # max |descriptor difference| (the bar; measured: < 1e-6)
COS_TOL = 1e-6


# ------------------------------------------------------------------------------------------------
# the format reader, on bytes encoded by hand from dlib's serialization rules
# ------------------------------------------------------------------------------------------------
def test_reader_primitives_hand_encoded() -> None:
    data = (b"\x01\x00"  # int 0: one value byte
            + b"\x02\x2c\x01"  # int 300 = 0x012c, little-endian
            + b"\x81\x05"  # int -5: sign bit 0x80
            + b"10"  # bools are ASCII '1' / '0'
            + b"\x01\x05relu_"  # string: length, bytes
            + b"\x01\x03\x81\x01"  # float 3 * 2**-1 = 1.5 (mantissa, exponent)
            + b"\x01\x00\x02\x00\x7d"  # float: exponent 32000 = +inf
            + b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x01" + struct.pack("<2f", 0.25, -2.0)  # tensor [1,2,1,1]
            + b"\x01\x01" + b"\x01\x01\x01\x20\x01\x03\x01\x03")  # alias_tensor (1, 32, 3, 3)
    r = Reader(data)
    assert (r.int(), r.int(), r.int()) == (0, 300, -5)
    assert (r.bool(), r.bool()) == (True, False)
    assert r.string() == "relu_"
    assert r.float() == 1.5 and r.float() == math.inf
    t = r.tensor()
    assert t.dtype == np.float32 and t.shape == (1, 2, 1, 1) and t.ravel().tolist() == [0.25, -2.0]
    assert r.alias_tensor() == (1, 32, 3, 3)
    assert r.pos == len(data)
    with pytest.raises(DlibFormatError):
        Reader(b"\x00").int()  # zero-length integer
    with pytest.raises(DlibFormatError):
        Reader(b"x").bool()
    with pytest.raises(DlibFormatError):
        Reader(b"\x01\x05ab").string()  # truncated
    with pytest.raises(DlibFormatError):
        Reader(b"\x81\x01").uint()  # negative unsigned


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    from fsrbench.analysis import carriers

    return carriers.locate("dlib-face-recognition").read_bytes()  # sha256-verified


def test_reader_refuses_other_bytes(model_bytes: bytes) -> None:
    ops = read_face_resnet(model_bytes)
    assert [o.kind for o in ops].count("con") == 29 and ops[0].kind == "input" and ops[-1].kind == "fc"
    with pytest.raises(DlibFormatError, match="trailing"):
        read_face_resnet(model_bytes + b"\x00")
    with pytest.raises(DlibFormatError, match="end of data"):
        read_face_resnet(model_bytes[:-100])
    i = model_bytes.index(b"max_pool_2") + len(b"max_pool_2")
    bad = model_bytes[:i] + b"\x01\x02" + model_bytes[i + 2:]  # window 2x2 instead of 3x3
    with pytest.raises(DlibFormatError, match="max_pool"):
        read_face_resnet(bad)
    i = model_bytes.index(b"relu_")
    with pytest.raises(DlibFormatError, match="relu_"):
        read_face_resnet(model_bytes[:i] + b"relu2" + model_bytes[i + 5:])


# ------------------------------------------------------------------------------------------------
# agreement with dlib on real and SR-like faces
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    from fsrbench.analysis import get_identity
    from fsrbench.api import Unavailable

    try:
        return get_identity("dlib-torch"), get_identity("dlib")
    except Unavailable as exc:
        pytest.skip(str(exc))


def _faces(folder: Path, n: int) -> np.ndarray:
    from fsrbench.imageio import read_image

    return np.stack([read_image(f) for f in sorted(folder.glob("*.png"))[:n]])


def _dlib_reference(ref, images, boxes) -> list[np.ndarray | None]:
    """dlib's own descriptor: shape in the box, then ``compute_face_descriptor(img, shape, 0, 0.25)``."""
    out = []
    for im, box in zip(images, boxes):
        out.append(None if box is None else ref.embed(im, box))
    return out


@pytest.fixture(scope="module")
def agreement(models, shared_data, one_torch_thread_module):
    """HR faces of faces-dev (all) and faces-val (first 24), their bicubic x8 and x4 round trips; descriptors of
    the port (batched) and of dlib, all in the HR box."""
    from fsrbench.imageio import make_lr, upsample

    port, ref = models
    hr = np.concatenate([_faces(shared_data / "faces-dev", 100), _faces(shared_data / "faces-val", 24)])
    boxes = [ref.detect_box(h) for h in hr]
    assert sum(b is not None for b in boxes) >= 60
    out = {}
    for name, imgs in {"hr": hr, "x8": np.stack([upsample(make_lr(h, 8)) for h in hr]),
                       "x4": np.stack([upsample(make_lr(h, 4)) for h in hr[::3]])}.items():
        bx = boxes if name != "x4" else boxes[::3]
        out[name] = (port.embed_batch(list(imgs), bx), _dlib_reference(ref, imgs, bx), bx)
    return out


@pytest.fixture(scope="module")
def one_torch_thread_module():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hr", "x8", "x4"])
def test_descriptors_match_dlib(agreement, kind) -> None:
    got, want, boxes = agreement[kind]
    assert [g is None for g in got] == [w is None for w in want] == [b is None for b in boxes]
    g = np.stack([x for x in got if x is not None])
    w = np.stack([x for x in want if x is not None])
    assert g.dtype == np.float64 and g.shape[1] == 128
    diff = float(np.abs(g - w).max())
    assert diff <= DESC_TOL, f"{kind}: max |port - dlib| = {diff:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["x8", "x4"])
def test_sr_vs_hr_cosine_and_distance_match_dlib(agreement, kind) -> None:
    from fsrbench.metrics.identity import cosine

    hr_port, hr_dlib, _ = agreement["hr"]
    sr_port, sr_dlib, _ = agreement[kind]
    step = 3 if kind == "x4" else 1
    pairs = [(sp, hp, sd, hd) for sp, hp, sd, hd in zip(sr_port, hr_port[::step], sr_dlib, hr_dlib[::step])
             if sp is not None]
    sp, hp, sd, hd = (np.stack(c) for c in zip(*pairs))
    cos_port, cos_dlib = cosine(sp, hp), cosine(sd, hd)
    assert np.abs(cos_port - cos_dlib).max() <= COS_TOL
    dist_port, dist_dlib = np.linalg.norm(sp - hp, axis=1), np.linalg.norm(sd - hd, axis=1)
    assert np.abs(dist_port - dist_dlib).max() <= 1e-5
    # the printed precision of the boards (4 decimals) is unchanged for the means
    assert f"{cos_port.mean():.4f}" == f"{cos_dlib.mean():.4f}" and f"{dist_port.mean():.4f}" == f"{dist_dlib.mean():.4f}"


def test_batch_equals_one_by_one_and_failures_stay_in_place(models, faces_dev, one_torch_thread) -> None:
    port, ref = models
    hr = _faces(faces_dev, 6)
    boxes = [ref.detect_box(h) for h in hr]
    assert all(b is not None for b in boxes)
    imgs = list(hr)
    imgs[2] = np.zeros_like(hr[2])  # blank -> None
    boxes = list(boxes)
    boxes[4] = None  # no HR box -> None
    batch = port.embed_batch(imgs, boxes)
    assert batch[2] is None and batch[4] is None
    for i in (0, 1, 3, 5):
        one = port.embed(imgs[i], boxes[i])
        assert one is not None and np.abs(batch[i] - one).max() <= 1e-6
        assert np.abs(batch[i] - ref.embed(imgs[i], boxes[i])).max() <= DESC_TOL


def test_chip_is_dlibs_chip(models, faces_dev) -> None:
    """The port's chip is dlib's: dlib's descriptor of that chip equals dlib's descriptor of the image."""
    port, ref = models
    img = _faces(faces_dev, 1)[0]
    box = ref.detect_box(img)
    chip = port.chip(img, box)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    from_chip = np.asarray(ref.rec.compute_face_descriptor(chip, 0))
    np.testing.assert_array_equal(from_chip, ref.embed(img, box))


def test_port_shares_dlibs_model_id_and_refuses_random_jitter(models) -> None:
    from fsrbench.analysis.dlib_resnet import DlibIdentityTorch

    port, ref = models
    assert port.id == ref.id and port.dim == ref.dim == 128
    with pytest.raises(ValueError, match="num_jitters"):
        DlibIdentityTorch(num_jitters=2)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_cuda_descriptors_match_dlib(faces_dev) -> None:
    from fsrbench.analysis.dlib_resnet import DlibIdentityTorch
    from fsrbench.analysis import get_identity

    ref = get_identity("dlib")
    gpu = DlibIdentityTorch(device="cuda")
    hr = _faces(faces_dev, 16)
    boxes = [ref.detect_box(h) for h in hr]
    got = gpu.embed_batch(list(hr), boxes)
    for g, h, b in zip(got, hr, boxes):
        if b is not None:
            assert np.abs(g - ref.embed(h, b)).max() <= DESC_TOL


# ------------------------------------------------------------------------------------------------
# wiring: face_common.descriptors and the identity metric's option
# ------------------------------------------------------------------------------------------------
class _Counting:
    """An identity model recording how it is called (embed_batch optional, may raise)."""

    id = "counting-test-model"
    dim = 2

    def __init__(self, batch_raises: bool = False) -> None:
        self.batch_calls: list[int] = []
        self.single_calls = 0
        self.batch_raises = batch_raises

    def embed(self, image, box):
        self.single_calls += 1
        if int(image[0, 0, 0]) == 7:
            raise RuntimeError("bad face")
        return np.array([float(image[0, 0, 0]), 1.0])

    def embed_batch(self, images, boxes):
        self.batch_calls.append(len(images))
        if self.batch_raises:
            raise RuntimeError("batch failed")
        return [np.array([float(im[0, 0, 0]), 1.0]) for im in images]


@pytest.mark.parametrize("raises", [False, True])
def test_descriptors_use_embed_batch_and_isolate_failures(monkeypatch, raises) -> None:
    from fsrbench.api import CellContext
    from fsrbench.cache import Cache
    from fsrbench.metrics import face_common as fc

    model = _Counting(batch_raises=raises)
    names = []
    monkeypatch.setattr(fc, "get_identity_model", lambda name=None: names.append(name) or model)
    imgs = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 7, 4)])
    boxes = [FaceBox(0, 0, 8, 8)] * 3 + [None]
    ctx = CellContext("d", 4, "m", None, cache=Cache(None), options={"identity": "my-model"})
    res = fc.descriptors(imgs, boxes, ctx, "sr")
    assert names == ["my-model"]
    assert model.batch_calls == [3]
    if not raises:
        assert model.single_calls == 0 and res["ok"].tolist() == [True, True, True, False]
        assert res["desc"][2].tolist() == [7.0, 1.0]
    else:  # retried one by one: only the failing face fails
        assert model.single_calls == 3 and res["ok"].tolist() == [True, True, False, False]
        assert "bad face" in res["reason"][2]
    assert res["desc"][1].tolist() == [2.0, 1.0] and res["reason"][3] == "sr: no HR face box"


def test_identity_metric_option_selects_the_model(faces_dev, one_torch_thread, monkeypatch) -> None:
    """Default (dlib-torch) and ``identity=dlib`` give the same id_cos / id_dist on real faces (dlib = reference)."""
    from fsrbench.analysis.dlib_models import DlibIdentity
    from fsrbench.analysis.dlib_resnet import DlibIdentityTorch
    from fsrbench.api import CellContext
    from fsrbench.cache import Cache
    from fsrbench.imageio import make_lr, upsample
    from fsrbench.metrics.identity import IdentitySimilarity

    calls = {"dlib": 0, "dlib-torch": 0}
    for cls, key, meth in ((DlibIdentity, "dlib", "embed"), (DlibIdentityTorch, "dlib-torch", "embed_batch")):
        orig = getattr(cls, meth)

        def spy(self, *a, _orig=orig, _key=key, **k):
            calls[_key] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(cls, meth, spy)
    hr = _faces(faces_dev, 8)
    sr = np.stack([upsample(make_lr(h, 8)) for h in hr])
    rows = {}
    for opt in ({}, {"identity": "dlib"}):
        before = dict(calls)
        m = IdentitySimilarity(**opt)
        m.setup("cpu")
        ctx = CellContext("d", 8, "bicubic", None, cache=Cache(None), options=dict(opt))
        rows[opt.get("identity", "default")] = m.per_image(sr, hr, ctx)
        used = [k for k in calls if calls[k] > before[k]]
        assert used == [opt.get("identity", "dlib-torch")], (opt, calls)
    a, b = rows["default"], rows["dlib"]
    assert np.isfinite(a["id_cos"]).sum() >= 6
    np.testing.assert_allclose(a["id_cos"], b["id_cos"], rtol=0, atol=COS_TOL)
    np.testing.assert_allclose(a["id_dist"], b["id_dist"], rtol=0, atol=1e-5)


def test_cuda_path_turns_tf32_off_and_restores_it() -> None:
    """TF32 (cuDNN's default for float32 convolutions) would move descriptors by ~1e-3: off during the
    network pass on CUDA, the user's settings restored afterwards; nothing changes on the CPU."""
    import torch

    from fsrbench.analysis.dlib_resnet import _no_tf32

    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with _no_tf32(torch.device("cuda", 0)):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with _no_tf32("cpu"):
            assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm
