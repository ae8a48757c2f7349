"""Estimator A (fsrbench.analysis.au_geometric) on hand-built meshes derived from MediaPipe's canonical face."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fsrbench.analysis.au_geometric import GeometricAU, canonical_mesh, constants, measures, umeyama


def _face() -> np.ndarray:
    """Canonical face (image convention) + 10 synthetic iris points, scaled/translated to 128-px pixels."""
    m = canonical_mesh()
    iris = []
    for ring in ((33, 133, 159, 145), (263, 362, 386, 374)):
        c = m[list(ring)].mean(0)
        iris.append(c)
        iris += [c + 0.3 * np.array(d) for d in ((1, 0, 0), (0, -1, 0), (-1, 0, 0), (0, 1, 0))]
    return np.vstack([m, np.array(iris)]) * 4.0 + np.array([64.0, 64.0, 0.0])


def _rot(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_constants_match_au_md():
    c = constants()
    assert len(c["anchors"]) == 26 and c["threshold"] == 1.0
    assert c["subset"] == ["AU05", "AU06", "AU12", "AU20", "AU25", "AU26"]
    assert c["measures"]["M12a"] == {"desc": c["measures"]["M12a"]["desc"], "mean": -0.0130, "sd": 0.0300}
    assert c["aus"]["AU12"]["c"] == 0.816 and c["aus"]["AU04"]["c"] == 0.885
    assert len(GeometricAU.aus) == 15 and set(GeometricAU.subset) <= set(GeometricAU.aus)
    v = np.asarray(c["canonical_face_model"]["vertices"])
    assert v.shape == (468, 3)
    # spot values of MediaPipe's canonical_face_model.obj ("v 0.000000 -3.406404 5.979507" etc.)
    assert np.allclose(v[0], [0.0, -3.406404, 5.979507]) and np.allclose(v[33], [-4.445859, 2.663991, 3.173422])


def test_canonical_matches_installed_obj_when_present():
    spec = importlib.util.find_spec("mediapipe")
    obj = Path(spec.submodule_search_locations[0]) / "modules/face_geometry/data/canonical_face_model.obj" if spec else None
    if obj is None or not obj.is_file():
        pytest.skip("the installed mediapipe wheel ships no canonical_face_model.obj")
    v = np.array([[float(t) for t in line.split()[1:4]] for line in obj.read_text().splitlines() if line.startswith("v ")])
    assert np.allclose(v, np.asarray(constants()["canonical_face_model"]["vertices"]), atol=1e-6)


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(26, 3))
    r = _rot(0.2, -0.4, 0.9)
    dst = 2.5 * src @ r.T + np.array([3.0, -1.0, 7.0])
    s, rr, t = umeyama(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(rr, r) and np.allclose(t, [3.0, -1.0, 7.0])


def test_canonical_face_is_near_neutral():
    # the canonical mesh is an average face: its measures lie near the frozen neutral means
    scores = GeometricAU().estimate(_face()[None])[0]
    assert np.all(np.abs(scores) < 1.5), dict(zip(GeometricAU.aus, scores.round(2)))
    m = measures(_face())
    for k in ("M01", "M06", "M12a", "M12b", "M26"):
        assert abs(m[k] - constants()["measures"][k]["mean"]) < constants()["measures"][k]["sd"]


def test_measure_by_hand_mouth_width():
    v = canonical_mesh()
    iod = np.linalg.norm((v[263, :2] + v[362, :2]) / 2 - (v[33, :2] + v[133, :2]) / 2)
    width = np.linalg.norm(v[291, :2] - v[61, :2]) / iod
    lip_gap = (v[14, 1] - v[13, 1]) / iod
    m = measures(_face())
    assert m["M12b"] == pytest.approx(width, abs=1e-9) and m["M25"] == pytest.approx(lip_gap, abs=1e-9)


@pytest.mark.parametrize("angles,scale,shift", [((0.0, 0.0, 0.3), 1.0, (0, 0, 0)),
                                                  ((0.15, -0.25, -0.2), 0.6, (10, -20, 5)),
                                                  ((0.0, 0.4, 0.0), 1.7, (-30, 4, -12))])
def test_similarity_invariance(angles, scale, shift):
    face = _face()
    g = GeometricAU()
    ref = g.estimate(face[None])[0]
    c = face.mean(0)
    moved = scale * (face - c) @ _rot(*angles).T + c + np.array(shift, dtype=float)
    assert np.allclose(g.estimate(moved[None])[0], ref, atol=1e-8)


def test_mouth_corners_up_raise_au12_and_lower_au15():
    g = GeometricAU()
    face = _face()
    smile = face.copy()
    smile[[61, 291], 1] -= 3.0  # corners up (y down in image convention)
    smile[61, 0] -= 2.0
    smile[291, 0] += 2.0  # and wider
    s0, s1 = g.estimate(np.stack([face, smile]))
    i = {au: k for k, au in enumerate(g.aus)}
    assert s1[i["AU12"]] > s0[i["AU12"]] + 1.0
    assert s1[i["AU20"]] > s0[i["AU20"]]
    assert s1[i["AU15"]] < s0[i["AU15"]]
    assert g.present(s1[None])[0, i["AU12"]]


def test_open_mouth_raises_au25_au26():
    g = GeometricAU()
    face = _face()
    open_ = face.copy()
    lower = [14, 17, 18, 152]  # inner lower lip, lower lip bottom, below lip, chin
    open_[lower, 1] += 6.0
    s0, s1 = g.estimate(np.stack([face, open_]))
    i = {au: k for k, au in enumerate(g.aus)}
    assert s1[i["AU25"]] > s0[i["AU25"]] + 2 and s1[i["AU26"]] > s0[i["AU26"]] + 1
    # rigid anchors untouched: brow scores unchanged
    assert s1[i["AU01"]] == pytest.approx(s0[i["AU01"]])


def test_brows_up_raise_au01_au02():
    g = GeometricAU()
    face = _face()
    up = face.copy()
    up[[107, 55, 336, 285, 105, 52, 334, 282], 1] -= 1.5
    s0, s1 = g.estimate(np.stack([face, up]))
    i = {au: k for k, au in enumerate(g.aus)}
    assert s1[i["AU01"]] > s0[i["AU01"]] + 1 and s1[i["AU02"]] > s0[i["AU02"]] + 1
    assert s1[i["AU04"]] < s0[i["AU04"]]


def test_invalid_landmarks_give_nan_and_not_present():
    g = GeometricAU()
    bad = np.full((1, 478, 3), np.nan)
    s = g.estimate(np.concatenate([bad, _face()[None]]))
    assert np.all(np.isnan(s[0])) and np.all(np.isfinite(s[1]))
    assert not g.present(s)[0].any()
