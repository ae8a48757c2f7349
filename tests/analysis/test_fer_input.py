"""FER input (issue 22): the HR image's detector box for HR and SR, fer's own Haar rule, fallback, flip, ids."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrbench.analysis.base import FaceBox, FERModel
from fsrbench.analysis.fer_input import FERInput, mirror_box, pipeline_id, predict
from fsrbench.api import CellContext
from fsrbench.cache import Cache

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
HAAR_REF = REPO / "tests" / "data" / "fer_haar_reference.json"


class SpyFER(FERModel):
    """Records the boxes it is given; probabilities from the mean colour inside the image (3 classes)."""

    name = "spy-fer"
    classes = ("happy", "sad", "neutral")
    id = "spy-fer-v1"
    seen: list = []

    def predict_proba(self, faces, boxes=None):
        SpyFER.seen.append(list(boxes) if boxes is not None else None)
        m = np.asarray(faces, dtype=np.float64).mean(axis=(1, 2))
        e = np.exp(m / 20.0)
        return e / e.sum(1, keepdims=True)


@pytest.fixture()
def spy():
    from fsrbench.registry import registry

    registry("fer").register("spy-fer", SpyFER, override=True)
    SpyFER.seen = []
    yield SpyFER
    registry("fer").unregister("spy-fer")


def _ctx(options=None, meta=None):
    return CellContext(dataset="t", scale=8, method="m", protocol=None, cache=Cache(None), meta=meta or [],
                       options=dict({"fer": "spy-fer"}, **(options or {})))


def test_pipeline_ids_by_hand() -> None:
    assert pipeline_id("mx-1", FERInput(box="whole")) == "mx-1"  # the old id: stored results keep it
    assert pipeline_id("mx-1", FERInput()) == "mx-1-hrbox-hog"  # the new default
    assert pipeline_id("mx-1", FERInput(box="haar", fallback="skip", flip=True)) == "mx-1-hrbox-haar-fbskip-flip"
    assert pipeline_id("mx-1", FERInput(box="whole", flip=True)) == "mx-1-flip"
    assert FERInput.from_options({"fer_box": "none"}).box == "whole"
    assert FERInput.from_options({"fer_box": "haar"}, {"fer_flip": "true"}) == FERInput("haar", "whole", True)
    with pytest.raises(ValueError, match="fer_box.*allowed: hog, haar, mediapipe, whole"):
        FERInput.from_options({"fer_box": "retina"})
    with pytest.raises(ValueError, match="fer_fallback"):
        FERInput.from_options({"fer_fallback": "guess"})


def test_mirror_box_by_hand() -> None:
    # pixel columns 10..39 of a 128-wide image are columns 88..117 of its mirror image
    assert mirror_box(FaceBox(10, 5, 40, 60), 128) == FaceBox(88, 5, 118, 60)
    assert mirror_box(None, 128) is None


def test_flip_is_the_mean_of_image_and_mirror(faces_dev: Path) -> None:
    from fsrbench.analysis import get_fer
    from fsrbench.imageio import read_image

    fer = get_fer("mini-xception")
    img = read_image(faces_dev / "mux_lfw_Greg_Kinnear_0001.png")[None]
    box = FaceBox(20, 14, 110, 114)
    p = fer.predict_proba(img, [box])[0]
    q = fer.predict_proba(np.ascontiguousarray(img[:, :, ::-1]), [FaceBox(18, 14, 108, 114)])[0]  # by hand
    np.testing.assert_allclose(predict(fer, img, [box], flip=True)[0], (p + q) / 2, atol=1e-12)
    assert not np.allclose(p, q, atol=1e-4)  # the mirror really is a different input


def test_haar_box_and_preprocessing_match_fers_own_code(faces_dev: Path) -> None:
    """Recorded outputs of fer 25.10.3's FER.detect_emotions (tests/data/make_fer_haar_reference.py): the
    Haar boxes and the SHA-256 of the float32 64x64 inputs its preprocessing hands to the classifier."""
    from fsrbench.analysis.fer_input import get_haar
    from fsrbench.analysis.fer_minixception import preprocess
    from fsrbench.imageio import read_image

    ref = json.loads(HAAR_REF.read_text())["faces"]
    assert len(ref) == 47
    haar = get_haar()
    n_faces = 0
    for name, d in ref.items():
        img = read_image(faces_dev / name)
        box, reason = haar.detect(img)
        if not d["boxes"]:
            assert box is None and "Haar" in reason, name
            continue
        n_faces += 1
        x, y, w, h = max(d["boxes"], key=lambda b: b[2] * b[3])
        assert box == FaceBox(x, y, x + w, y + h), name
        x_in = np.ascontiguousarray(preprocess(img, box, (10, 10)), dtype=np.float32)
        assert hashlib.sha256(x_in.tobytes()).hexdigest() == d["input_sha256"][0], name
    assert n_faces == 44


def test_sr_is_scored_in_the_hr_box_never_a_new_detection(faces_dev: Path, spy) -> None:
    from fsrbench.analysis import get_landmarks
    from fsrbench.imageio import make_lr, read_image, upsample
    from fsrbench.metrics.ecm import ECM

    hr = np.stack([read_image(faces_dev / n) for n in ("mux_lfw_Greg_Kinnear_0001.png", "deepface_wild_img1.png")])
    sr = np.stack([upsample(make_lr(h, 8)) for h in hr])
    sr[1] = 128  # a blank SR image: any detector finds nothing there, the HR box is still used
    hog = [get_landmarks("dlib68").detect(h).box for h in hr]
    assert all(b is not None for b in hog)
    m = ECM(fer="spy-fer")
    out = m.per_image(sr, hr, _ctx())
    assert SpyFER.seen == [hog, hog]  # one call for HR, one for SR, both with the HR HOG boxes
    assert list(out["ecm_fer_fallback"]) == ["", ""]


def test_no_hr_box_falls_back_visibly_or_is_skipped(spy) -> None:
    from fsrbench.metrics.ecm import ECM
    from fsrbench.metrics.expression import ExpressionAgreement

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)  # noise: no face for any detector
    sr = hr.copy()
    e = ExpressionAgreement(fer="spy-fer")
    t = pd.DataFrame(e.per_image(sr, hr, _ctx(meta=[{}] * 3)))
    assert SpyFER.seen[0] == [None, None, None]  # whole image
    assert t["expr_fer_fallback"].str.startswith("whole image: hr: no face found").all()
    s = e.summarize(t, _ctx())["expression_agreement"]
    assert s["n_fer_fallback"] == 3 and s["value"] == 1.0 and s["fer_model"] == "spy-fer-v1-hrbox-hog"
    assert "dlib HOG" in s["fer_preprocessing"]

    m = ECM(fer="spy-fer", fer_fallback="skip", n_boot=50)
    t = pd.DataFrame(m.per_image(sr, hr, _ctx({"fer_fallback": "skip"})))
    assert t["ecm_entropy_hr"].isna().all() and t["ecm_reason"].str.contains("fer_fallback=skip").all()
    assert t["ecm_fer_fallback"].str.startswith("skipped: hr:").all()


def test_whole_mode_keeps_the_old_id_and_inputs(spy) -> None:
    from fsrbench.metrics.ecm import ECM

    hr = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    m = ECM(fer="spy-fer", fer_box="whole", n_boot=20)
    t = pd.DataFrame(m.per_image(hr, hr, _ctx({"fer_box": "whole"})))
    assert SpyFER.seen[0] == [None, None] and list(t["ecm_fer_fallback"]) == ["", ""]
    assert m.summarize(t, _ctx({"fer_box": "whole"}))["ecm"]["fer_model"] == "spy-fer-v1"


def test_hr_accuracy_on_held_out_labelled_faces(faces_dev: Path) -> None:
    """Issue 22's target: FER accuracy >= 0.55 on labelled HR faces never used to choose the input
    (scripts/fer_input_selection.py's held-out half; 14 faces, so this is a regression check, not a study)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sel", REPO / "scripts" / "fer_input_selection.py")
    sel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sel)
    files, imgs, labels = sel.labelled_faces(faces_dev)
    half = sel.split_halves([{"filename": f, "emotion": lab} for f, lab in zip(files, labels)])
    held = np.array([half[f] == "held-out" for f in files])
    assert held.sum() == 14
    p, fallback = sel.probabilities(imgs, "hog", False)
    from fsrbench.analysis.fer_minixception import CLASSES

    y = np.array([CLASSES.index(lab) for lab in labels])
    acc = float((p.argmax(1) == y)[held].mean())
    assert acc >= 0.55, acc
    assert not any(fallback)  # every labelled face has a HOG box


def test_run_rejects_a_bad_fer_box_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fsrbench.cli import main

    rc = main(["run", "--datasets", "demo", "--methods", "bicubic", "--fer-box", "retina", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "fer_box = 'retina'" in err and "hog, haar, mediapipe, whole" in err and "Traceback" not in err
