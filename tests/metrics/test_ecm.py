"""ECM (CONVENTIONS.md fixed definition) on constructed probability sets with hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fsrbench.metrics.ecm import ECM_IDEAL, density_histograms, ecm, entropy


def _dirichlet(n, c, conc, seed):
    return np.random.default_rng(seed).dirichlet(np.full(c, conc), size=n)


def test_identical_sets_hit_the_floor():
    p = _dirichlet(50, 7, 0.5, 0)
    out = ecm(p, p.copy())
    assert out["L_H"] == 0.0 and out["L_conf"] == 0.0
    assert out["ecm"] == pytest.approx(math.log(1e-6)) == pytest.approx(ECM_IDEAL)
    assert (out["N"], out["C"], out["bins"]) == (50, 7, 10)


def test_disjoint_histograms_by_hand():
    # class 0: HR all at 1.0 (last bin, density 10), SR all at 0.0 (first bin, density 10): 100 + 100;
    # class 1 mirrors it: L_H = 400. One-hot rows have entropy 0 -> L_conf = 0 -> floor.
    hr = np.array([[1.0, 0.0], [1.0, 0.0]])
    sr = np.array([[0.0, 1.0], [0.0, 1.0]])
    out = ecm(hr, sr)
    assert out["L_H"] == pytest.approx(400.0)
    assert out["L_conf"] == 0.0
    assert out["ecm"] == pytest.approx(200.0 + math.log(1e-6))


def test_partial_shift_by_hand():
    # N = 4, every image adds 1/(4*0.1) = 2.5 to its bin.
    hr = np.array([[0.05, 0.95], [0.15, 0.85], [0.95, 0.05], [0.95, 0.05]])
    sr = np.array([[0.05, 0.95], [0.05, 0.95], [0.95, 0.05], [0.95, 0.05]])
    # class 0: HR bins {0: 2.5, 1: 2.5, 9: 5}, SR {0: 5, 9: 5} -> 2.5² + 2.5² = 12.5; class 1 likewise
    out = ecm(hr, sr)
    assert out["L_H"] == pytest.approx(25.0)
    h = lambda a, b: -(a * math.log(a) + b * math.log(b))  # noqa: E731
    l_conf = abs(h(0.15, 0.85) - h(0.05, 0.95)) / 4
    assert out["L_conf"] == pytest.approx(l_conf)
    assert out["ecm"] == pytest.approx(12.5 + math.log(l_conf))


def test_value_one_goes_to_last_bin_and_density_heights():
    h = density_histograms(np.array([[1.0], [0.0], [0.1], [0.55]]))
    assert h.shape == (1, 10)
    # each of the 4 values contributes 1/(4*0.1) = 2.5; 0.1 is the left edge of bin 1
    assert np.allclose(h[0, [0, 1, 5, 9]], 2.5) and np.allclose(np.delete(h[0], [0, 1, 5, 9]), 0.0)
    assert h.sum() * 0.1 == pytest.approx(1.0)


def test_entropy_natural_log_and_floor():
    assert entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(math.log(2))
    assert entropy(np.array([[1.0, 0.0, 0.0]]))[0] == 0.0
    assert entropy(np.full((1, 7), 1 / 7))[0] == pytest.approx(math.log(7))


def test_permutation_invariance():
    hr = _dirichlet(60, 7, 0.4, 1)
    sr = _dirichlet(60, 7, 0.8, 2)
    ref = ecm(hr, sr)
    perm = np.random.default_rng(3).permutation(60)
    joint = ecm(hr[perm], sr[perm])
    assert joint["ecm"] == pytest.approx(ref["ecm"])
    cls = np.random.default_rng(4).permutation(7)
    assert ecm(hr[:, cls], sr[:, cls])["ecm"] == pytest.approx(ref["ecm"])
    # shuffling SR alone keeps the histograms (L_H) but breaks the image pairing (L_conf changes)
    shuffled = ecm(hr, sr[perm])
    assert shuffled["L_H"] == pytest.approx(ref["L_H"])
    assert shuffled["L_conf"] != pytest.approx(ref["L_conf"])


def test_density_makes_ecm_independent_of_duplication():
    hr = _dirichlet(30, 7, 0.5, 5)
    sr = _dirichlet(30, 7, 0.5, 6)
    one = ecm(hr, sr)
    three = ecm(np.tile(hr, (3, 1)), np.tile(sr, (3, 1)))
    assert three["L_H"] == pytest.approx(one["L_H"]) and three["L_conf"] == pytest.approx(one["L_conf"])
    assert three["N"] == 90


def test_sample_size_noise_floor_shrinks_with_n():
    # two independent samples of the SAME distribution: L_H is pure sampling noise and falls with N
    def mean_lh(n):
        return np.mean([ecm(_dirichlet(n, 7, 0.5, 10 + s), _dirichlet(n, 7, 0.5, 100 + s))["L_H"]
                        for s in range(5)])
    small, large = mean_lh(50), mean_lh(2000)
    assert small > 10 * large
    assert large < 0.5


def test_bad_shapes_rejected():
    with pytest.raises(ValueError):
        ecm(np.ones((3, 7)) / 7, np.ones((4, 7)) / 7)
