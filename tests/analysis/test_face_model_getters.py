"""One way to a face model: fsrbench.analysis's getters (the metrics, the priors and `fsrbench analyze` share
their instances); a metric asking for an unknown or broken model is skipped with the reason (Unavailable)."""
from __future__ import annotations

import pytest

from fsrbench import analysis
from fsrbench import registry as reg
from fsrbench.api import Unavailable


def test_require_turns_an_unknown_model_into_unavailable_with_the_names():
    with pytest.raises(Unavailable, match="fer model 'mini-xcepton' cannot be loaded.*mini-xception"):
        analysis.require("fer", "mini-xcepton")
    with pytest.raises(Unavailable, match="cannot be loaded"):
        analysis.require("landmarks", "nope")


def test_require_turns_a_broken_plugin_into_unavailable():
    reg.register_broken("fer", "broken-fer", "test", "'broken-fer' (test) failed to import: ImportError: x")
    try:
        with pytest.raises(Unavailable, match="ImportError: x"):
            analysis.require("fer", "broken-fer")
        from fsrbench.metrics.ecm import ECM

        with pytest.raises(Unavailable, match="broken-fer"):
            ECM(fer="broken-fer").setup()
    finally:
        reg.registry("fer").unregister("broken-fer")


def test_metrics_and_priors_share_the_analysis_instances(tmp_path):
    from fsrbench.data.demo import DemoDataset
    from fsrbench.data.priors import DatasetPriors
    from fsrbench.metrics.face_common import get_au_estimator

    au = analysis.get_au("geometric")
    assert get_au_estimator() is au and analysis.require("au", "geometric") is au
    assert DatasetPriors(DemoDataset(), root=tmp_path)._model("au") is au
