"""MediaPipe 478 landmarks: HR detection on real faces, the landmarks-to-ROI rule, the detector-free ROI path."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fsrbench.analysis import get_landmarks
from fsrbench.api.face import FaceBox, LandmarkModel
from fsrbench.analysis.mediapipe_mesh import landmarks_to_box


def _faces(d: Path) -> list[tuple[str, np.ndarray]]:
    from fsrbench.imageio import read_image

    return [(p.name, read_image(p)) for p in sorted(d.glob("*.png"))]


def _degrade(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    lr = Image.fromarray(img).resize((size, size), Image.BICUBIC)
    return np.asarray(lr.resize(img.shape[1::-1], Image.BICUBIC))


@pytest.fixture(scope="module")
def mesh():  # noqa: ANN201
    return get_landmarks("mediapipe478")


def test_landmarks_to_roi_rule_hand_computed() -> None:
    pts = np.zeros((478, 2))
    pts[:, 0] = np.linspace(10, 50, 478)  # bbox x 10..50 (w 40)
    pts[:, 1] = np.linspace(20, 80, 478)  # bbox y 20..80 (h 60)
    pts[33] = (20, 40)
    pts[263] = (40, 40 - 20 * math.tan(math.radians(10)))  # right eye corner 10 degrees higher
    box = landmarks_to_box(pts)
    side = 1.5 * 60
    assert box.x0 == pytest.approx(30 - side / 2) and box.x1 == pytest.approx(30 + side / 2)
    assert box.y0 == pytest.approx(50 - side / 2) and box.y1 == pytest.approx(50 + side / 2)
    # MediaPipe: rotation = -atan2(-(y263 - y33), x263 - x33): a face tilted so that 263 is higher -> -10 deg
    assert box.rotation == pytest.approx(-math.radians(10))
    pts[263] = (0, 40 + 1e-9)  # pointing left: wrapped into (-pi, pi]
    assert -math.pi < landmarks_to_box(pts).rotation <= math.pi


def test_protocol_and_id(mesh) -> None:  # noqa: ANN001
    assert isinstance(mesh, LandmarkModel)
    assert mesh.num_points == 478
    assert "0.10.21" in mesh.id and "e06a804e0144" in mesh.id


def test_landmarks_found_on_all_hr_faces(faces_dev: Path, mesh) -> None:  # noqa: ANN001
    faces = _faces(faces_dev)
    assert len(faces) >= 40
    drift = []
    for name, img in faces:
        r = mesh.detect(img)
        assert r.ok, (name, r.reason)
        assert r.points.shape == (478, 3)
        w = img.shape[1]  # faces may extend a little beyond a tight crop
        assert -0.25 * w < r.points[:, 0].min() < r.points[:, 0].max() < 1.25 * w
        b = r.box
        assert b.width == pytest.approx(b.height) and b.width > 40
        f = mesh.fit(img, b)
        assert f.ok and f.points.shape == (478, 3)
        drift.append(np.median(np.linalg.norm(f.points[:, :2] - r.points[:, :2], axis=1)))
    # AU.md §1: HR-box landmarks vs detector landmarks differ by ~0.5 px (median over faces)
    assert np.median(drift) < 1.0, np.median(drift)


def test_fit_is_deterministic_and_order_independent(faces_dev: Path, mesh) -> None:  # noqa: ANN001
    faces = _faces(faces_dev)[:3]
    boxes = [mesh.detect(img).box for _, img in faces]
    first = [mesh.fit(img, b).points for (_, img), b in zip(faces, boxes)]
    again = [mesh.fit(img, b).points for (_, img), b in reversed(list(zip(faces, boxes)))][::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_fit_with_hr_box_on_degraded_faces(faces_dev: Path, mesh) -> None:  # noqa: ANN001
    """Points even at 16 px (presence gate 0), drifting more as the input gets worse (STACK.md: ~0.6/1.6/3.5 px)."""
    faces = _faces(faces_dev)[::5]
    med = {}
    for size in (64, 32, 16):
        d = []
        for _, img in faces:
            box = mesh.detect(img).box
            hr = mesh.fit(img, box).points
            r = mesh.fit(_degrade(img, size), box)
            assert r.ok and r.points.shape == (478, 3) and r.box == box
            d.append(np.median(np.linalg.norm(r.points[:, :2] - hr[:, :2], axis=1)))
        med[size] = float(np.median(d))
    assert med[64] < med[32] < med[16] < 8.0, med


def test_bad_faces_give_reasons_not_exceptions(mesh) -> None:  # noqa: ANN001
    black = np.zeros((128, 128, 3), np.uint8)
    r = mesh.detect(black)
    assert not r.ok and "blank" in r.reason
    assert not mesh.fit(black, FaceBox(0, 0, 128, 128)).ok
    tiny = np.random.default_rng(0).integers(0, 255, (4, 4, 3), dtype=np.uint8)
    assert "too small" in mesh.detect(tiny).reason
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    r = mesh.detect(noise)
    assert not r.ok and "no face" in r.reason
    assert not mesh.fit(noise, FaceBox(10, 10, 10, 10)).ok  # degenerate box
    assert not mesh.detect(np.zeros((128, 128, 3), np.float32)).ok  # wrong dtype


def test_rotated_face_box_and_points_follow_the_rotation(faces_dev: Path, mesh) -> None:  # noqa: ANN001
    """Rotate a face by a known angle: the box rotation changes by that angle and the ROI-graph points are the
    original points rotated (checks the rotation convention of the NormalizedRect fed to the graph)."""
    from PIL import Image

    img = _faces(faces_dev)[0][1]
    r0 = mesh.detect(img)
    p0 = mesh.fit(img, r0.box).points
    c = img.shape[1] / 2
    for deg in (15.0, -25.0):
        rot = np.asarray(Image.fromarray(img).rotate(deg, resample=Image.BICUBIC))  # counter-clockwise
        r = mesh.detect(rot)
        assert r.ok
        assert math.degrees(r.box.rotation - r0.box.rotation) == pytest.approx(-deg, abs=2.0)
        th = math.radians(deg)
        x, y = p0[:, 0] - c, p0[:, 1] - c
        expect = np.stack([c + x * math.cos(th) + y * math.sin(th), c - x * math.sin(th) + y * math.cos(th)], 1)
        got = mesh.fit(rot, r.box).points[:, :2]
        assert np.median(np.linalg.norm(got - expect, axis=1)) < 1.5
