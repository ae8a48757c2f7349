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


def test_builtin_metric_declarations_reproduce_the_leaderboard_constants():
    from fsrbench.leaderboard import HEADLINE, PER_IMAGE_COLUMN

    primary: set[str] = set()
    columns: dict[str, str] = {}
    for name in reg.metrics.names():
        cls = reg.metrics.get(name)
        assert cls.kind == "metrics"
        primary |= set(cls.primary_keys())
        columns.update(cls.summary_column_map())
    assert primary == set(HEADLINE)
    assert columns == PER_IMAGE_COLUMN


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


@pytest.mark.parametrize("metric_name, key", [("ecm", "ecm"), ("au_f1", "au_f1"), ("au_f1", "au_f1_all")])
def test_set_statistics_match_the_leaderboards_significance_inputs(metric_name, key):
    from fsrbench.leaderboard import _set_statistic

    a, b = _face_tables()
    ref_stat, da, db = _set_statistic(key, a, b)
    stat, groups = reg.metrics.get(metric_name)().set_statistic(key, a)
    ok = a[sum(groups, [])].notna().all(axis=1) & b[sum(groups, [])].notna().all(axis=1)
    mine_a = [a.loc[ok, g].to_numpy(float) for g in groups]
    mine_b = [b.loc[ok, g].to_numpy(float) for g in groups]
    for x, y in zip(mine_a + mine_b, list(da) + list(db)):
        np.testing.assert_array_equal(x, y)
    assert stat(*mine_a) == ref_stat(*da) and stat(*mine_b) == ref_stat(*db)
    assert reg.metrics.get(metric_name)().set_statistic("psnr", a) is None
