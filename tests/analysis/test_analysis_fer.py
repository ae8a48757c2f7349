"""FER plugin mini-Xception: agreement with the original Keras model + fer preprocessing (recorded reference)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fsrbench.analysis import get_fer
from fsrbench.api.face import FaceBox, FERModel
from fsrbench.analysis.fer_minixception import CLASSES, _tf_same_pad, to_gray

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
REF = REPO / "tests" / "data" / "fer_keras_reference.json"


@pytest.fixture(scope="module")
def fer():  # noqa: ANN201
    import torch

    torch.set_num_threads(1)
    return get_fer("mini-xception")


def test_plugin_contract(fer) -> None:  # noqa: ANN001
    assert isinstance(fer, FERModel)
    assert fer.name == "mini-xception"
    assert fer.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert "59534287fdfb" in fer.id
    from fsrbench.registry import registry

    assert registry("fer").get("mini-xception") is type(fer)


def test_tf_same_padding_hand_computed() -> None:
    assert _tf_same_pad(64, 3, 2) == (0, 1)  # TF pads the extra row/col at the end
    assert _tf_same_pad(63, 3, 2) == (1, 1)
    assert _tf_same_pad(60, 1, 2) == (0, 0)
    assert _tf_same_pad(10, 3, 1) == (1, 1)


def test_gray_is_opencv_bt601() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    expect = np.round(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    assert np.abs(to_gray(rgb).astype(int) - expect).max() <= 1


def test_synthetic_inputs_match_keras(fer) -> None:  # noqa: ANN001
    ref = json.loads(REF.read_text())["synthetic"]
    x = np.random.default_rng(ref["seed"]).uniform(-1.0, 1.0, size=(ref["n"], 64, 64, 1)).astype(np.float32)
    p = fer.predict_inputs(x[..., 0])
    np.testing.assert_allclose(p, np.array(ref["proba"]), atol=1e-5, rtol=0)


def test_real_faces_match_keras_and_fer_preprocessing(faces_dev: Path, fer) -> None:  # noqa: ANN001
    from fsrbench.imageio import read_image

    ref = json.loads(REF.read_text())
    assert tuple(ref["classes"]) == CLASSES
    worst = 0.0
    for name, d in ref["faces"].items():
        img = read_image(faces_dev / name)
        x, y, w, h = d["box"]
        box = None if (x, y, w, h) == (0, 0, img.shape[1], img.shape[0]) else FaceBox(x, y, x + w, y + h)
        p = fer.predict_proba(img[None], [box])[0]
        r = np.array(d["proba"])
        assert p.argmax() == r.argmax(), name
        worst = max(worst, float(np.abs(p - r).max()))
    assert worst < 1e-5, worst


def test_probabilities_sum_to_one_on_all_faces(faces_dev: Path, fer) -> None:  # noqa: ANN001
    from fsrbench.imageio import read_image

    imgs = np.stack([read_image(p) for p in sorted(faces_dev.glob("*.png"))])
    p = fer.predict_proba(imgs)
    assert p.shape == (len(imgs), 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p >= 0).all()
    # batching does not change results; a single [H,W,3] face is accepted
    np.testing.assert_allclose(fer.predict_proba(imgs[3]), p[3:4], atol=1e-6)


def test_unusable_face_gives_nan_row(fer) -> None:  # noqa: ANN001
    img = np.full((128, 128, 3), 100, np.uint8)
    p = fer.predict_proba(np.stack([img, img]), [FaceBox(500, 500, 600, 600), None])
    assert np.isnan(p[0]).all() and np.isfinite(p[1]).all()
