"""Face metrics with the real offline models on the real faces of ../shared/data/faces-dev.

* hr-oracle (SR = HR) gets every metric's ideal value;
* bicubic x8 is worse than bicubic x4 on every face metric;
* failures (a blank image) become NaN + reason and are counted; HR analyses come from the disk cache.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest

from fsrbench.api import CellContext
from fsrbench.cache import Cache

pytest.importorskip("mediapipe")
pytest.importorskip("dlib")


def _metrics():
    from fsrbench.api import Unavailable
    from fsrbench.metrics.au import AUF1
    from fsrbench.metrics.ecm import ECM
    from fsrbench.metrics.expression import ExpressionAgreement
    from fsrbench.metrics.identity import IdentitySimilarity
    from fsrbench.metrics.landmarks import LandmarkDistance

    ms = [ECM(n_boot=200), ExpressionAgreement(), AUF1(n_boot=200), LandmarkDistance(), IdentitySimilarity()]
    try:
        for m in ms:
            m.setup()
    except Unavailable as exc:
        pytest.skip(f"face models unavailable: {exc}")
    return ms


def _score(metrics, sr, hr, cache, meta=None, bs=16):
    cols: dict[str, list] = {}
    for s in range(0, len(hr), bs):
        ctx = CellContext(dataset="faces-dev", scale=0, method="t", protocol=metrics[0].protocol, cache=cache,
                          meta=(meta or [{}] * len(hr))[s:s + bs])
        for m in metrics:
            for k, v in m.per_image(sr[s:s + bs], hr[s:s + bs], ctx).items():
                cols.setdefault(k, []).extend(list(v))
    table = pd.DataFrame(cols)
    ctx = CellContext(dataset="faces-dev", scale=0, method="t", protocol=metrics[0].protocol, cache=cache)
    summary = {}
    for m in metrics:
        summary.update(m.summarize(table, ctx))
    return table, summary


@pytest.fixture(scope="module")
def dev(faces_dev):
    from fsrbench.imageio import read_image

    with open(faces_dev / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    hr = np.stack([read_image(faces_dev / r["filename"]) for r in rows])
    meta = [{"emotion": r["emotion"]} for r in rows]
    return hr, meta


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return Cache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def bicubic(dev, shared_cache):
    from fsrbench.imageio import make_lr, upsample

    hr, meta = dev
    metrics = _metrics()
    cache = shared_cache
    out = {}
    for scale in (4, 8):
        sr = np.stack([upsample(make_lr(h, scale)) for h in hr])
        out[scale] = _score(metrics, sr, hr, cache, meta)
    return out


def test_hr_oracle_gets_ideal_values(dev, bicubic, shared_cache):
    hr, meta = dev
    hr = hr[:12]
    metrics = _metrics()
    _, s = _score(metrics, hr.copy(), hr, shared_cache, meta[:12], bs=6)
    assert s["ecm"]["value"] == pytest.approx(math.log(1e-6)) and s["ecm"]["L_H"] == 0.0
    assert s["expression_agreement"]["value"] == 1.0
    assert s["au_f1"]["value"] == 1.0 and s["au_f1_all"]["value"] == 1.0 and s["au_acc"]["value"] == 1.0
    for k in ("landmark_ld", "landmark_mpe", "landmark_nme", "landmark_nme478", "identity_dist"):
        assert s[k]["value"] == 0.0, k
    assert s["identity_cos"]["value"] == pytest.approx(1.0)
    for m in metrics:
        assert m.ideal is not None
    for k, v in s.items():
        assert v["n_missing"] == 0 and v["n"] == (v["n_labelled"] if "n_labelled" in v else 12), k


def test_bicubic_x8_worse_than_x4_on_every_face_metric(bicubic):
    (t4, s4), (t8, s8) = bicubic[4], bicubic[8]
    lower_better = ("ecm", "landmark_ld", "landmark_mpe", "landmark_nme", "landmark_nme478", "identity_dist")
    higher_better = ("expression_agreement", "expression_acc_sr", "au_f1", "au_f1_all", "au_acc", "identity_cos")
    for k in lower_better:
        assert s8[k]["value"] > s4[k]["value"], (k, s4[k]["value"], s8[k]["value"])
    for k in higher_better:
        assert s8[k]["value"] < s4[k]["value"], (k, s4[k]["value"], s8[k]["value"])
    # every face was analysed (faces-dev crops are all detectable on HR)
    assert s4["au_f1"]["n"] == s8["au_f1"]["n"] == len(t4) == 47
    # magnitudes in line with the AU.md study and W-Net's bicubic landmark distance (CelebA 11.06 / 22.23)
    assert 0.65 < s4["au_f1"]["value"] < 0.95 and 0.3 < s8["au_f1"]["value"] < 0.65
    assert 6 < s4["landmark_ld"]["value"] < 20 and 15 < s8["landmark_ld"]["value"] < 40


def test_paired_comparison_x4_vs_x8(bicubic):
    from fsrbench.stats import paired_comparison

    (t4, _), (t8, _) = bicubic[4], bicubic[8]
    out = paired_comparison(t8["lm_nme"].to_numpy(float), t4["lm_nme"].to_numpy(float), n_boot=500)
    assert out["effect"] > 0 and out["ci_low"] > 0 and out["p_wilcoxon"] < 1e-4


def test_failures_are_nan_with_reason_and_hr_cache_is_reused(dev, tmp_path):
    hr, _ = dev
    hr = hr[:4].copy()
    hr[2] = 128  # blank: no face
    metrics = _metrics()
    table, s = _score(metrics, hr.copy(), hr, Cache(tmp_path), bs=4)
    # FER models read the whole face-centred crop (no detection), so ECM / expression still score it
    assert np.isfinite(table["ecm_entropy_hr"]).all()
    for col, why in (("au_agree", "au_reason"), ("lm_nme", "lm_reason"), ("lm_nme478", None),
                     ("id_cos", "id_reason")):
        assert np.isnan(table[col][2]) and np.isfinite(table[col][[0, 1, 3]]).all(), col
        if why:
            assert table[why][2].startswith(("hr:", "dlib hr:")) and table[why][0] == "", (why, table[why][2])
    for k in ("au_f1", "landmark_nme", "identity_cos"):
        assert s[k]["n"] == 3 and s[k]["n_missing"] == 1
    # a second "method" on the same HR: every HR analysis is a disk-cache hit, nothing is recomputed
    fresh = Cache(tmp_path)
    _score(metrics, hr[:, ::-1].copy(), hr, fresh, bs=4)
    assert fresh.misses == 0 and fresh.hits > 0


def test_metric_compare_x8_vs_x4(bicubic):
    from fsrbench.metrics.au import AUF1
    from fsrbench.metrics.ecm import ECM
    from fsrbench.metrics.expression import ExpressionAgreement
    from fsrbench.metrics.identity import IdentitySimilarity
    from fsrbench.metrics.landmarks import LandmarkDistance

    (t4, s4), (t8, s8) = bicubic[4], bicubic[8]
    e = ECM(n_boot=300).compare(t8, t4)["ecm"]
    assert e["effect"] == pytest.approx(s8["ecm"]["value"] - s4["ecm"]["value"]) and e["effect"] > 0
    assert e["ci_low"] > 0 and e["n"] == 47
    a = AUF1(n_boot=300).compare(t8, t4)
    assert a["au_f1"]["effect"] == pytest.approx(s8["au_f1"]["value"] - s4["au_f1"]["value"])
    assert a["au_f1"]["ci_high"] < 0 and a["au_agree"]["p_wilcoxon"] < 0.01
    assert ExpressionAgreement().compare(t8, t4)["expression_agreement"]["effect"] < 0
    lm = LandmarkDistance().compare(t8, t4)
    assert all(v["ci_low"] > 0 for v in lm.values())
    ids = IdentitySimilarity().compare(t8, t4)
    assert ids["identity_cos"]["ci_high"] < 0 and ids["identity_dist"]["ci_low"] > 0


def test_au_reference_from_dataset_labels(dev, shared_cache):
    from fsrbench.metrics.au import AUS, AUF1

    hr, _ = dev
    hr = hr[:4]
    labels = [{"aus": {"AU12": 1, "AU25": 0}}, {"aus": {"AU12": 0, "AU25": 1}},
              {"aus": {"AU12": 1, "AU25": 1}}, {"aus": {"AU12": 0, "AU25": 0}}]
    m = AUF1(n_boot=50)
    m.setup()
    ctx = CellContext(dataset="d", scale=0, method="t", protocol=m.protocol, cache=shared_cache, meta=labels)
    cols = m.per_image(hr.copy(), hr, ctx)
    assert list(cols["au_ref_AU12"]) == [1, 0, 1, 0] and list(cols["au_ref_AU25"]) == [0, 1, 1, 0]
    assert set(cols["au_ref_source"]) == {"labels"}
    # AUs the labels do not name fall back to HR presence: with SR = HR they agree with the prediction
    assert all((cols[f"au_ref_{a}"] == cols[f"au_sr_{a}"]).all() for a in AUS if a not in ("AU12", "AU25"))
    s = m.summarize(pd.DataFrame(cols), ctx)
    assert s["au_f1"]["reference"] == "dataset AU labels"
