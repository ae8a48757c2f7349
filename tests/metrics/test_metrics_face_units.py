"""Face metrics without real face models: a fake FER plugin, AU F1 arithmetic, label mapping, memo sharing."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fsrbench.api.face import FERModel
from fsrbench.api import CellContext
from fsrbench.cache import Cache
from fsrbench.metrics.au import AUS, AUF1, f1_per_au, macro_accuracy, macro_f1
from fsrbench.metrics.ecm import ECM, ecm
from fsrbench.metrics.expression import ExpressionAgreement, canonical_emotion, label_indices
from fsrbench.registry import registry


class FakeFER(FERModel):
    """Probabilities from the image's mean red / green / blue: deterministic, content-dependent, 3 classes."""

    name = "fake-fer"
    classes = ("happy", "sad", "neutral")
    id = "fake-fer-v1"
    calls = 0

    def predict_proba(self, faces, boxes=None):
        FakeFER.calls += 1
        m = np.asarray(faces, dtype=np.float64).mean(axis=(1, 2))  # [N,3]
        if np.any(m.sum(1) == 0):
            raise ValueError("black image")
        e = np.exp(m / 20.0)
        return e / e.sum(1, keepdims=True)


def _fake_probs(imgs):
    m = imgs.astype(np.float64).mean(axis=(1, 2))
    e = np.exp(m / 20.0)
    return e / e.sum(1, keepdims=True)


@pytest.fixture(autouse=True)
def _register_fake():
    registry("fer").register("fake-fer", FakeFER, override=True)
    yield
    registry("fer").unregister("fake-fer")


def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)


def _ctx(meta=None, cache=None):
    return CellContext(dataset="t", scale=4, method="m", protocol=None, cache=cache or Cache(None),
                       meta=meta or [], options={"fer": "fake-fer"})


def _run(metric, sr, hr, meta=None, bs=5):
    cols: dict[str, list] = {}
    for s in range(0, len(hr), bs):
        ctx = _ctx(meta[s:s + bs] if meta else None)
        for k, v in metric.per_image(sr[s:s + bs], hr[s:s + bs], ctx).items():
            cols.setdefault(k, []).extend(list(v))
    return pd.DataFrame(cols)


def test_ecm_metric_with_any_registered_fer_plugin():
    hr = _images(20, 0)
    sr = np.clip(hr.astype(int) + np.random.default_rng(1).integers(-40, 40, hr.shape), 0, 255).astype(np.uint8)
    m = ECM(fer="fake-fer", n_boot=200, seed=0)
    table = _run(m, sr, hr)
    assert np.all(np.isnan(table["ecm_p_hr_3"]))  # unused class slots stay empty
    s = m.summarize(table, _ctx())["ecm"]
    ref = ecm(_fake_probs(hr), _fake_probs(sr))  # computed from the fake model's formula, not the metric
    assert s["value"] == pytest.approx(ref["ecm"]) and s["L_H"] == pytest.approx(ref["L_H"])
    assert s["L_conf"] == pytest.approx(ref["L_conf"])
    # the FER pipeline id: plugin id + the default HR-box input (issue 22); noise images have no face, so every
    # image fell back to the whole crop and is counted
    assert (s["N"], s["C"], s["bins"], s["fer_model"]) == (20, 3, 10, "fake-fer-v1-hrbox-hog")
    assert s["n_fer_fallback"] == 20 and table["ecm_fer_fallback"].str.startswith("whole image: hr:").all()
    assert s["n_boot"] == 200 and s["seed"] == 0 and s["ci_low"] <= s["value"] <= s["ci_high"]
    # the per-image table round-trips through CSV (the runner's storage) to the same value
    back = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
    assert m.summarize(back, _ctx())["ecm"]["value"] == pytest.approx(s["value"])


def test_ecm_oracle_hits_floor_and_failures_are_counted():
    hr = _images(10, 2)
    hr[3] = 0  # the fake FER fails on a black image
    m = ECM(fer="fake-fer", n_boot=100)
    table = _run(m, hr.copy(), hr, bs=10)
    assert np.isnan(table["ecm_entropy_hr"][3]) and "black image" in table["ecm_reason"][3]
    s = m.summarize(table, _ctx())["ecm"]
    assert s["value"] == pytest.approx(math.log(1e-6)) == pytest.approx(ECM.ideal)
    assert s["ci_low"] == pytest.approx(s["value"]) and s["ci_high"] == pytest.approx(s["value"])
    assert s["n"] == 9 and s["n_missing"] == 1


def test_fer_runs_once_per_batch_for_ecm_and_expression():
    hr, sr = _images(6, 3), _images(6, 4)
    ctx = _ctx()
    FakeFER.calls = 0
    ECM(fer="fake-fer").per_image(sr, hr, ctx)
    ExpressionAgreement(fer="fake-fer").per_image(sr, hr, ctx)
    assert FakeFER.calls == 2  # one HR batch + one SR batch, shared through ctx.memo


def test_hr_fer_is_cached_on_disk_across_methods(tmp_path):
    hr = _images(4, 5)
    FakeFER.calls = 0
    ExpressionAgreement(fer="fake-fer").per_image(_images(4, 6), hr, _ctx(cache=Cache(tmp_path)))
    assert FakeFER.calls == 2
    # another method, a new process-level cache object on the same directory: HR comes from disk
    ExpressionAgreement(fer="fake-fer").per_image(_images(4, 7), hr, _ctx(cache=Cache(tmp_path)))
    assert FakeFER.calls == 3


def test_expression_agreement_and_label_accuracy():
    hr = _images(8, 8)
    meta = [{"emotion": e} for e in ("happiness", "sadness", "", "neutral", "contempt", "Happy", "sad", "x")]
    m = ExpressionAgreement(fer="fake-fer")
    table = _run(m, hr.copy(), hr, meta=meta, bs=4)
    s = m.summarize(table, _ctx())
    assert s["expression_agreement"]["value"] == 1.0
    top = _fake_probs(hr).argmax(1)
    labels = np.array([0, 1, -1, 2, -1, 0, 1, -1])
    has = labels >= 0
    acc = float((top[has] == labels[has]).mean())
    assert s["expression_acc_hr"]["value"] == pytest.approx(acc) == pytest.approx(s["expression_acc_sr"]["value"])
    assert s["expression_acc_hr"]["n"] == 5 and s["expression_acc_hr"]["n_labelled"] == 5


def test_emotion_label_mapping():
    assert canonical_emotion("Happiness") == "happy" and canonical_emotion("anger") == "angry"
    assert canonical_emotion(float("nan")) == "" and canonical_emotion(None) == ""
    classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    got = label_indices([{"emotion": "surprise"}, {"emotion": "fear"}, {}, {"emotion": "contempt"}], classes, 4)
    assert got[0] == 5 and got[1] == 2 and np.isnan(got[2]) and np.isnan(got[3])


def test_f1_per_au_by_hand():
    ref = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    pred = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=bool)
    # AU a: TP 1, FN 1, FP 1 -> 2/(2+1+1) = 0.5; AU b: no positives -> skipped; AU c: TP 2 -> 1.0
    f = f1_per_au(ref, pred)
    assert f[0] == pytest.approx(0.5) and np.isnan(f[1]) and f[2] == 1.0
    assert macro_f1(ref, pred) == pytest.approx(0.75)
    # accuracy over the AUs with positives: a 2/4, c 4/4
    assert macro_accuracy(ref, pred) == pytest.approx(0.75)
    assert np.isnan(macro_f1(np.zeros((3, 2), bool), np.ones((3, 2), bool)))


def test_au_summary_from_table_by_hand():
    n = 6
    cols = {"au_agree": np.ones(n), "au_ref_source": np.array(["hr"] * n, dtype=object)}
    for a in AUS:
        cols[f"au_ref_{a}"] = np.zeros(n)
        cols[f"au_sr_{a}"] = np.zeros(n)
    cols["au_ref_AU12"] = np.array([1, 1, 1, 0, 0, 0.0])
    cols["au_sr_AU12"] = np.array([1, 1, 0, 1, 0, 0.0])  # TP 2, FN 1, FP 1 -> F1 = 4/6
    cols["au_ref_AU25"] = np.array([1, 0, 0, 0, 0, 0.0])
    cols["au_sr_AU25"] = np.array([1, 0, 0, 0, 0, 0.0])  # F1 = 1
    cols["au_ref_AU01"] = np.array([0, 0, 0, 0, 0, 1.0])
    cols["au_sr_AU01"] = np.array([0, 0, 0, 0, 0, 0.0])  # F1 = 0 (not in the 6-AU subset)
    cols["au_ref_AU05"] = np.array([np.nan, 0, 0, 0, 0, 0])  # a failed image: NaN row
    table = pd.DataFrame(cols)
    m = AUF1(n_boot=50)
    m._est = type("E", (), {"id": "fake", "threshold": 1.0, "aus": AUS})()
    s = m.summarize(table, _ctx())
    # image 0 is dropped (failed): AU12 over images 1-5: ref 1,1,0,0,0 / sr 1,0,1,0,0 -> 2/(2+1+1) = 0.5
    assert s["au_f1"]["n"] == 5 and s["au_f1"]["n_missing"] == 1
    assert s["au_f1"]["aus"] == ["AU12"] and s["au_f1"]["value"] == pytest.approx(0.5)
    assert s["au_f1_all"]["value"] == pytest.approx(0.25)  # AU12 0.5, AU01 0.0; AU25 has no positive left
    assert s["au_f1"]["reference"] == "AU presence on HR"


def test_au_presence_rule_and_threshold_option():
    from fsrbench.analysis.au_geometric import GeometricAU

    est = GeometricAU()
    scores = np.zeros((2, len(AUS)))
    scores[0, AUS.index("AU12")] = 1.5
    scores[1, AUS.index("AU12")] = 0.7
    scores[1, AUS.index("AU25")] = np.nan
    p = AUF1._present(est, scores)
    assert p[0, AUS.index("AU12")] == 1 and p[1, AUS.index("AU12")] == 0 and p[1, AUS.index("AU25")] == 0
    p = AUF1._present(est, scores, threshold=0.5)
    assert p[1, AUS.index("AU12")] == 1 and p.sum() == 2
    assert AUF1(au_threshold=0.5).threshold == 0.5


def test_au_labels_from_meta():
    from fsrbench.metrics.au import au_labels

    assert au_labels({"aus": {"AU12": 1, "AU25": "0", "AU99": 1}}) == {"AU12": 1.0, "AU25": 0.0}
    assert au_labels({"AU06": "1", "au26": "0", "AU12": "", "emotion": "happy"}) == {"AU06": 1.0, "AU26": 0.0}
    assert au_labels({"emotion": "happy"}) == {} and au_labels(None) == {}
