"""Tests of fsrbench.stats against scipy and hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from fsrbench.stats import (bootstrap_ci, mean_ci, paired_bootstrap_set, paired_comparison,
                                    resample_indices)


def test_mean_ci_matches_scipy_t_interval():
    rng = np.random.default_rng(1)
    v = rng.normal(3.0, 2.0, size=40)
    out = mean_ci(np.r_[v, np.nan, np.nan])
    lo, hi = st.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=st.sem(v))
    assert out["value"] == pytest.approx(v.mean())
    assert out["ci_low"] == pytest.approx(lo) and out["ci_high"] == pytest.approx(hi)
    assert out["n"] == 40 and out["n_missing"] == 2


def test_mean_ci_hand_computed():
    # values 1,2,3: mean 2, sd 1, sem 1/sqrt(3), t_{0.975,2} = 4.302652729911275
    out = mean_ci(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 / np.sqrt(3)
    assert out["ci_low"] == pytest.approx(2 - half) and out["ci_high"] == pytest.approx(2 + half)


def test_bootstrap_ci_constant_data_has_zero_width():
    out = bootstrap_ci(lambda x: float(np.mean(x)), np.full(25, 0.7), n_boot=200, seed=3)
    assert out["value"] == pytest.approx(0.7)
    assert out["ci_low"] == pytest.approx(0.7) and out["ci_high"] == pytest.approx(0.7)
    assert out["n_boot"] == 200 and out["seed"] == 3 and out["n"] == 25


def test_bootstrap_ci_agrees_with_scipy_bootstrap_for_the_mean():
    rng = np.random.default_rng(5)
    v = rng.exponential(1.0, size=200)
    ours = bootstrap_ci(lambda x: float(np.mean(x)), v, n_boot=4000, seed=0)
    ref = st.bootstrap((v,), np.mean, n_resamples=4000, method="percentile",
                       random_state=np.random.default_rng(11)).confidence_interval
    width = ref.high - ref.low
    # two independent Monte-Carlo estimates of the same percentile interval
    assert abs(ours["ci_low"] - ref.low) < 0.1 * width
    assert abs(ours["ci_high"] - ref.high) < 0.1 * width


def test_bootstrap_ci_is_reproducible_and_seed_dependent():
    v = np.arange(30, dtype=float) ** 1.5
    a = bootstrap_ci(np.median, v, n_boot=300, seed=7)
    b = bootstrap_ci(np.median, v, n_boot=300, seed=7)
    c = bootstrap_ci(np.median, v, n_boot=300, seed=8)
    assert a == b
    assert (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])


def test_bootstrap_multi_array_rows_stay_together():
    # statistic on paired columns: the share of rows where x == y is 1 on every resample
    x = np.arange(20)
    out = bootstrap_ci(lambda a, b: float(np.mean(a == b)), (x, x.copy()), n_boot=100)
    assert out["ci_low"] == out["ci_high"] == 1.0


def test_bootstrap_invalid_resamples_counted():
    x = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    out = bootstrap_ci(lambda a: float(np.nan) if a.sum() == 0 else float(a.mean()), x, n_boot=500, seed=0)
    # P(no 1 drawn in 6 draws) = (5/6)^6 = 0.335
    assert 0.25 < out["n_boot_invalid"] / 500 < 0.42


def test_resample_indices_shape_and_range():
    idx = resample_indices(10, 50, seed=1)
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9


def test_paired_comparison_constant_shift():
    a = np.linspace(0, 1, 12)
    out = paired_comparison(a, a + 0.25, n_boot=500)
    assert out["effect"] == pytest.approx(-0.25)
    assert out["ci_low"] == pytest.approx(-0.25) and out["ci_high"] == pytest.approx(-0.25)
    assert out["p_bootstrap"] == 0.0
    # 12 negative differences, all ties in |d|: exact p is 2/2**12 for distinct ranks; scipy uses
    # the normal approximation with ties -> small p
    assert out["p_wilcoxon"] < 0.01


def test_paired_comparison_wilcoxon_exact_hand_value():
    # differences 1..5 all positive: W+ = 15, exact two-sided p = 2 * (1/32) = 0.0625
    a = np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    b = a - np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = paired_comparison(a, b, n_boot=200)
    assert out["p_wilcoxon"] == pytest.approx(0.0625)
    assert out["effect"] == pytest.approx(3.0)


def test_paired_comparison_identical_and_missing():
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([1.0, 2.0, 3.0, np.nan])
    out = paired_comparison(a, b, n_boot=100)
    assert out["n"] == 2 and out["n_missing"] == 2
    assert out["effect"] == 0.0 and out["p_wilcoxon"] == 1.0 and out["p_bootstrap"] == 1.0


def test_paired_comparison_pairing_is_tighter_than_unpaired():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, 100)  # large between-image variance
    a, b = base + 0.3 + rng.normal(0, 0.1, 100), base
    out = paired_comparison(a, b, n_boot=1000)
    assert out["ci_low"] > 0.2 and out["ci_high"] < 0.4 and out["p_wilcoxon"] < 1e-6


def test_paired_bootstrap_set_statistic():
    x = np.arange(40, dtype=float)
    out = paired_bootstrap_set(lambda v: float(np.max(v) - np.min(v)), x, x * 2, n_boot=300)
    assert out["value_a"] == 39.0 and out["value_b"] == 78.0 and out["effect"] == -39.0
    assert out["ci_high"] < 0 and out["p_bootstrap"] == 0.0
    with pytest.raises(ValueError):
        paired_bootstrap_set(np.mean, x, x[:10])


def test_bootstrap_recentre_keeps_spread_and_centres_on_estimate():
    # the number of distinct images is biased low under resampling with replacement (~63% of N)
    v = np.arange(50, dtype=float)
    distinct = lambda x: float(len(np.unique(x)))  # noqa: E731
    plain = bootstrap_ci(distinct, v, n_boot=500, seed=1)
    cent = bootstrap_ci(distinct, v, n_boot=500, seed=1, recentre=True)
    assert plain["value"] == 50.0 and 28 < plain["boot_median"] < 36 and plain["ci_high"] < 50.0
    shift = plain["boot_median"] - 50.0
    assert cent["ci_low"] == pytest.approx(plain["ci_low"] - shift)
    assert cent["ci_high"] == pytest.approx(plain["ci_high"] - shift)
    assert cent["ci_low"] <= 50.0 <= cent["ci_high"]


def test_align_tables_by_image_id():
    import pandas as pd

    from fsrbench.stats import align_tables, compare_means

    a = pd.DataFrame({"image_id": ["x", "y", "z"], "v": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"image_id": ["z", "x", "w"], "v": [30.0, 10.0, 0.0]})
    a2, b2 = align_tables(a, b)
    assert list(a2["image_id"]) == ["x", "z"] and list(b2["v"]) == [10.0, 30.0]
    out = compare_means(a, b, {"v": "v"}, n_boot=100)["v"]
    assert out["effect"] == pytest.approx(-18.0) and out["n"] == 2
