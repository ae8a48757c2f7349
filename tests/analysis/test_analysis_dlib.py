"""dlib 68-point landmarks and the 128-D identity descriptor on real faces."""
from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from fsrbench.analysis import get_identity, get_landmarks
from fsrbench.api.face import FaceBox, IdentityModel, LandmarkModel
from fsrbench.analysis.dlib_models import cosine_similarity, euclidean_distance


def test_distance_helpers_hand_computed() -> None:
    a = np.array([3.0, 4.0])
    b = np.array([0.0, 0.0])
    assert euclidean_distance(a, b) == pytest.approx(5.0)
    assert cosine_similarity([1, 0], [0, 2]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [-3, 0]) == pytest.approx(-1.0)
    np.testing.assert_allclose(euclidean_distance(np.ones((2, 3)), np.zeros((2, 3))), [3 ** 0.5] * 2)


def _labelled(faces_dev: Path) -> list[dict[str, str]]:
    with open(faces_dev / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_dlib68_detect_and_fit(faces_dev: Path) -> None:
    from fsrbench.imageio import read_image

    model = get_landmarks("dlib68")
    assert isinstance(model, LandmarkModel) and model.num_points == 68 and "fbdc2cb80eb9" in model.id
    rows = _labelled(faces_dev)
    for r in rows[::4]:
        img = read_image(faces_dev / r["filename"])
        d = model.detect(img)
        assert d.ok, (r["filename"], d.reason)
        assert d.points.shape == (68, 2)
        f = model.fit(img, d.box)
        np.testing.assert_array_equal(f.points, d.points)  # same box -> same points
        # inner eye corners (39, 42) lie inside the box, left of / right of each other
        assert d.box.x0 < f.points[39, 0] < f.points[42, 0] < d.box.x1
    assert not model.detect(np.zeros((128, 128, 3), np.uint8)).ok
    assert not model.fit(img, FaceBox(5, 5, 6, 6)).ok


def test_identity_same_person_closer_than_different(faces_dev: Path) -> None:
    from fsrbench.imageio import read_image

    ident = get_identity("dlib")
    assert isinstance(ident, IdentityModel) and ident.dim == 128 and "55533b28a958" in ident.id
    rows = [r for r in _labelled(faces_dev) if r["identity"]]
    by_id: dict[str, list[str]] = {}
    for r in rows:
        by_id.setdefault(r["identity"], []).append(r["filename"])
    people = [k for k, v in by_id.items() if len(v) >= 2]
    if len(people) < 2:
        pytest.skip("fewer than two identities with two images in labels.csv")
    names = [f for p in people for f in by_id[p]]
    emb = {}
    for f in names:
        img = read_image(faces_dev / f)
        box = ident.detect_box(img)
        assert box is not None, f
        v = ident.embed(img, box)
        assert v is not None and v.shape == (128,)
        emb[f] = v
    who = {f: p for p in people for f in by_id[p]}
    same = [euclidean_distance(emb[a], emb[b]) for a, b in combinations(names, 2) if who[a] == who[b]]
    diff = [euclidean_distance(emb[a], emb[b]) for a, b in combinations(names, 2) if who[a] != who[b]]
    assert max(same) < min(diff), (max(same), min(diff))
    assert np.median(same) < 0.6 < np.median(diff)  # dlib's documented same-person threshold
    img = read_image(faces_dev / names[0])
    assert ident.embed(np.zeros_like(img), FaceBox(30, 30, 90, 90)) is None  # blank -> None, no exception
