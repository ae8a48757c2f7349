"""The face metrics through the evaluation runner (`fsrbench run --methods bicubic,hr-oracle --datasets demo`).

Uses 4 demo faces at x8 to stay fast: every face metric must appear with its CI, hr-oracle must get the
ideal values, and the per-image table must carry the columns ECM / AU F1 are recomputed from.
"""
from __future__ import annotations

import math

import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("dlib")

FACE_METRICS = {"ecm": "fsrbench.metrics.ecm:ECM", "expression": "fsrbench.metrics.expression:ExpressionAgreement",
                "au_f1": "fsrbench.metrics.au:AUF1", "landmarks": "fsrbench.metrics.landmarks:LandmarkDistance",
                "identity": "fsrbench.metrics.identity:IdentitySimilarity"}


def test_run_demo_bicubic_and_oracle(tmp_path):
    from fsrbench.eval.runner import RunSpec, run
    from fsrbench.registry import metrics as metric_registry

    for name, target in FACE_METRICS.items():  # entry points may be missing in a stale install
        if name not in metric_registry:
            metric_registry.register(name, target, "test registration")
    spec = RunSpec(methods=["bicubic", "hr-oracle"], datasets=["demo"], scales=[8], metrics=list(FACE_METRICS),
                   out=str(tmp_path / "run"), limit=4, cache_dir=str(tmp_path / "cache"), progress=False,
                   metric_options={"n_boot": 200})
    res = run(spec, log=lambda *a, **k: None)
    cells = {c["method"]: c for c in res.metrics["cells"]}
    assert set(cells) == {"bicubic", "hr-oracle"}, res.metrics.get("skipped")
    expected = {"ecm", "expression_agreement", "au_f1", "au_f1_all", "au_acc", "landmark_ld", "landmark_nme",
                "landmark_nme478", "identity_cos", "identity_dist"}
    for c in cells.values():
        assert expected <= set(c["metrics"]), sorted(c["metrics"])
        for k in expected:
            v = c["metrics"][k]
            assert {"value", "ci_low", "ci_high", "n", "n_missing"} <= set(v) and v["n"] == 4, (k, v)
    o = cells["hr-oracle"]["metrics"]
    assert o["ecm"]["value"] == pytest.approx(math.log(1e-6))
    assert o["expression_agreement"]["value"] == 1.0 and o["au_f1_all"]["value"] == 1.0
    assert o["landmark_nme"]["value"] == 0.0 and o["landmark_nme478"]["value"] == 0.0
    assert o["identity_cos"]["value"] == 1.0
    b = cells["bicubic"]["metrics"]
    assert b["landmark_nme"]["value"] > 0 and b["identity_cos"]["value"] < 1 and b["ecm"]["value"] > o["ecm"]["value"]
    assert {"ecm_p_hr_0", "ecm_p_sr_6", "au_ref_AU12", "au_sr_AU12", "lm_reason"} <= set(res.per_image.columns)
