"""The contracts (fsrbench.api): every base class declares its registry ``kind``; a Metric declares how its
summaries reach the boards (primary keys, summary->column map, set statistic, compare) and the built-in
metrics' declarations reproduce the boards' current constants."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fsrbench import registry as reg
from fsrbench.api import AUEstimator, Dataset, FERModel, Method, Metric, TrainableMethod
from fsrbench.stats import paired_comparison


@pytest.mark.parametrize("base, kind", [(Method, "methods"), (TrainableMethod, "methods"), (Metric, "metrics"),
                                        (Dataset, "datasets"), (FERModel, "fer"), (AUEstimator, "au")])
def test_a_plugin_class_belongs_to_the_registry_its_base_declares(base, kind):
    sub = type("P", (base,), {"name": "p"})
    assert reg._kind_of(sub) == kind


def test_objects_without_a_known_kind_are_methods():
    assert reg._kind_of(type("G", (), {"kind": "gan"})) == "methods"  # unrelated attribute of the same name
    assert reg._kind_of(lambda **kw: None) == "methods"  # a factory
    assert reg._kind_of(type("M", (Metric,), {"name": "m"})()) == "methods"  # an instance, as before


def test_the_registry_module_imports_no_contract():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(reg.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "importlib.metadata", "pathlib", "typing", "fsrbench.errors"}


# The leaderboard's constants before the boards asked the metrics (fsrbench/leaderboard.py at c06139a), recorded.
OLD_HEADLINE = ["psnr", "ssim", "lpips", "ecm", "expression_agreement", "au_f1", "landmark_nme", "landmark_ld",
                "identity_cos"]
OLD_PER_IMAGE_COLUMN = {
    "psnr": "psnr", "ssim": "ssim", "lpips": "lpips", "expression_agreement": "expr_agree",
    "expression_acc_sr": "expr_correct_sr", "landmark_ld": "lm_ld", "landmark_mpe": "lm_mpe",
    "landmark_nme": "lm_nme", "landmark_nme478": "lm_nme478", "identity_cos": "id_cos", "identity_dist": "id_dist",
}
OLD_KEEP_PREFIXES = ("psnr", "ssim", "lpips", "ecm_p_", "expr_", "lm_ld", "lm_mpe", "lm_nme", "id_cos", "id_dist",
                     "au_ref_", "au_sr_")  # report/boards.py; columns ending in _reason were dropped


def test_builtin_metric_declarations_reproduce_the_leaderboard_constants():
    from fsrbench.report.metric_index import MetricIndex

    primary: set[str] = set()
    columns: dict[str, str] = {}
    stored: set[str] = set()
    every_column: list[str] = []
    for name in reg.metrics.names():
        cls = reg.metrics.get(name)
        assert cls.kind == "metrics"
        primary |= set(cls.primary_keys())
        columns.update(cls.summary_column_map())
        stored |= set(cls.stored_column_names())
        every_column += list(cls.column_names())
    assert primary == set(OLD_HEADLINE)
    assert columns == OLD_PER_IMAGE_COLUMN
    assert stored == {c for c in every_column if c.startswith(OLD_KEEP_PREFIXES) and not c.endswith("_reason")}
    # the main table's order: board_order, then each metric's primary keys in their declared order
    cells = [{"metrics": {k: {"metric": name} for name in reg.metrics.names()
                          for k in reg.metrics.get(name).primary_keys()}}]
    assert MetricIndex(cells).headline(primary) == OLD_HEADLINE


class _Toy(Metric):
    name = "toy"
    columns = ("toy_a", "toy_b")


def test_metric_defaults_fit_the_default_summarize():
    m = _Toy()
    assert m.primary_keys() == ("toy",)
    assert m.summary_column_map() == {"toy": "toy_a"}
    assert m.set_statistic("toy", pd.DataFrame()) is None
    rng = np.random.default_rng(1)
    a = pd.DataFrame({"image_id": [f"i{k}" for k in range(20)], "toy_a": rng.normal(size=20), "toy_b": 0.0})
    b = a.assign(toy_a=a["toy_a"] - 0.5 + rng.normal(scale=0.1, size=20))
    got = m.compare(a, b)
    want = paired_comparison(a["toy_a"].to_numpy(), b["toy_a"].to_numpy(), n_boot=2000, seed=0)
    assert set(got) == {"toy"} and got["toy"] == want


def _face_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from fsrbench.metrics.au import AUS
    from fsrbench.metrics.ecm import prob_columns

    rng = np.random.default_rng(seed)
    n = 30

    def table(shift: float) -> pd.DataFrame:
        d: dict[str, object] = {"image_id": [f"i{k}" for k in range(n)], "status": "ok"}
        for side in ("hr", "sr"):
            p = rng.dirichlet(np.ones(7) * (1 + shift), size=n)
            for k, col in enumerate(prob_columns(side)):
                d[col] = p[:, k] if k < 7 else np.nan
        for kind in ("ref", "sr"):
            for x in AUS:
                d[f"au_{kind}_{x}"] = rng.random(n)
        t = pd.DataFrame(d)
        t.loc[3, "ecm_p_sr_0"] = np.nan  # one image without FER output
        return t

    return table(0.0), table(1.0)


def _hand_macro_f1(ref: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the AUs that have a positive reference (2TP / (2TP + FP + FN)), by hand."""
    f1 = []
    for j in range(ref.shape[1]):
        r, p = ref[:, j] > 0.5, pred[:, j] > 0.5
        if r.sum() == 0:
            continue
        tp, fp, fn = (r & p).sum(), (~r & p).sum(), (r & ~p).sum()
        f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


@pytest.mark.parametrize("metric_name, key", [("ecm", "ecm"), ("au_f1", "au_f1"), ("au_f1", "au_f1_all")])
def test_set_statistics_equal_hand_computed_values(metric_name, key):
    from fsrbench.metrics.au import AUS, SUBSET
    from fsrbench.metrics.ecm import ecm

    a, _ = _face_tables()
    stat, groups = reg.metrics.get(metric_name)().set_statistic(key, a)
    ok = a[sum(groups, [])].notna().all(axis=1)
    arrays = [a.loc[ok, g].to_numpy(float) for g in groups]
    if key == "ecm":
        assert [len(g) for g in groups] == [7, 7]  # the probability slots holding values (a 7-class FER)
        p_hr = a.loc[ok, [f"ecm_p_hr_{k}" for k in range(7)]].to_numpy(float)
        p_sr = a.loc[ok, [f"ecm_p_sr_{k}" for k in range(7)]].to_numpy(float)
        want = ecm(p_hr, p_sr)["ecm"]
    else:
        aus = list(SUBSET) if key == "au_f1" else list(AUS)
        want = _hand_macro_f1(a.loc[ok, [f"au_ref_{x}" for x in aus]].to_numpy(float),
                              a.loc[ok, [f"au_sr_{x}" for x in aus]].to_numpy(float))
    assert stat(*arrays) == pytest.approx(want, rel=1e-12)
    assert reg.metrics.get(metric_name)().set_statistic("psnr", a) is None


# The leaderboard's own paired tests before phase B (fsrbench.leaderboard.significance at c06139a, which
# computed ECM and AU F1 itself), recorded on _face_tables() plus an lm_nme column: key -> (effect, ci_low,
# ci_high, p_bootstrap, n, significant) for n_boot=500, seed=1, alpha=0.05.
OLD_SIGNIFICANCE = {
    "ecm": (-4.37507237878129, -37.22573058339614, 22.62756281702954, 0.76, 29, False),
    "au_f1": (0.019816859533759834, -0.11430497814114411, 0.16525529609956477, 0.776, 30, False),
    "au_f1_all": (0.03462252564582341, -0.05698655604135237, 0.13585220471249182, 0.42, 30, False),
    "landmark_nme": (-0.04574053847355515, -0.053782625828015615, -0.038954136090959435, 0.0, 30, True),
}


@pytest.mark.parametrize("key", sorted(OLD_SIGNIFICANCE))
def test_board_significance_is_the_metrics_compare_with_the_old_numbers(key):
    from fsrbench.report.leaderboard import significance

    a, b = _face_tables()
    a["method"], b["method"] = "a", "b"
    rng = np.random.default_rng(5)
    a["lm_nme"] = rng.random(len(a))
    b["lm_nme"] = a["lm_nme"] + 0.05 + rng.normal(0, 0.02, len(a))
    pi = pd.concat([a, b]).assign(dataset="d", scale=4)
    got = significance(pi, "d", 4, key, "a", "b", n_boot=500, seed=1, alpha=0.05)
    effect, lo, hi, p, n, sig = OLD_SIGNIFICANCE[key]
    assert got["effect"] == pytest.approx(effect, rel=1e-12) and got["n"] == n and got["significant"] is sig
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert got["p_bootstrap"] == p and got["versus"] == "b"


def test_one_default_protocol_constant_and_plain_metric_class_names():
    """The default protocol is named once (fsrbench.protocols.DEFAULT_PROTOCOL); metric classes are named like
    the metric, without a "Metric" suffix (the old LPIPSMetric name stays an alias)."""
    import inspect

    import fsrbench
    from fsrbench.eval.components import Components
    from fsrbench.eval.runner import RunSpec
    from fsrbench.metrics import lpips
    from fsrbench.protocols import DEFAULT_PROTOCOL
    from fsrbench.recipes import ENGINE_DEFAULTS

    assert RunSpec().protocol == DEFAULT_PROTOCOL == ENGINE_DEFAULTS["protocol"]
    assert inspect.signature(Components.create).parameters["protocol"].default == DEFAULT_PROTOCOL
    assert inspect.signature(fsrbench.evaluate).parameters["protocol"].default == DEFAULT_PROTOCOL
    for name in reg.metrics.names():
        assert not reg.metrics.get(name).__name__.endswith("Metric"), name
    assert lpips.LPIPSMetric is lpips.LPIPS and reg.metrics.get("lpips") is lpips.LPIPS
