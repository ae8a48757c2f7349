"""Priors: flip permutations (checked against dlib / MediaPipe on real faces and against MediaPipe's own
mesh data), heatmaps (hand-computed Gaussians), landmark-drawn parsing maps, and the per-dataset cache
(second request loads from disk instead of recomputing)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrbench.api.face import FaceBox, LandmarkResult
from fsrbench.api import DataError, Dataset, Sample
from face_shapes import face68 as _face68
from fsrbench.data import priors as P


def _real_faces(faces_dev: Path, n: int) -> list[np.ndarray]:
    files = sorted(faces_dev.glob("deepface_wild_*.png"))[:n]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


# ------------------------------------------------------------------------------------------------
# flip permutations
# ------------------------------------------------------------------------------------------------
def test_flip_perm_68_is_the_ibug_mirror():
    perm = np.asarray(P.FLIP_PERM_68)
    assert sorted(perm) == list(range(68)) and np.array_equal(perm[perm], np.arange(68))
    # hand-listed iBUG pairs (0-based): jaw ends, brow ends, eye corners, mouth corners, fixed midline
    for a, b in [(0, 16), (8, 8), (17, 26), (21, 22), (30, 30), (31, 35), (36, 45), (39, 42), (48, 54),
                 (51, 51), (57, 57), (60, 64), (62, 62), (66, 66), (65, 67)]:
        assert perm[a] == b and perm[b] == a


def test_flip_perm_68_matches_dlib_on_mirrored_faces(faces_dev):
    pytest.importorskip("dlib")
    from fsrbench.analysis import get_landmarks
    from fsrbench.api import Unavailable

    try:
        model = get_landmarks("dlib68")
    except Unavailable as exc:
        pytest.skip(str(exc))
    errs, errs_id = [], []
    for img in _real_faces(faces_dev, 6):
        a, b = model.detect(img), model.detect(np.ascontiguousarray(img[:, ::-1]))
        if not (a.ok and b.ok):
            continue
        w = img.shape[1]
        errs.append(np.linalg.norm(P.flip_landmarks(a.points, w) - b.points, axis=1))
        errs_id.append(np.linalg.norm(P.flip_landmarks(a.points, w, perm=range(68)) - b.points, axis=1))
    assert len(errs) >= 3
    med, med_id = np.median(np.concatenate(errs)), np.median(np.concatenate(errs_id))
    assert med < 1.0, med  # dlib on the mirror image agrees with the permuted mirror (measured: 0.0 px)
    assert med_id > 3 * med


def test_flip_perm_478_structure_against_installed_mediapipe():
    conn = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    perm = P.flip_perm_478()
    assert perm.shape == (478,) and np.array_equal(perm[perm], np.arange(478))
    edges = {frozenset(e) for e in conn.FACEMESH_TESSELATION}
    kept = sum(frozenset((int(perm[a]), int(perm[b]))) in edges for a, b in conn.FACEMESH_TESSELATION)
    assert kept >= 2540, kept  # of 2556; the tessellation is not exactly symmetric at the nostrils
    for left, right in [("LEFT_EYE", "RIGHT_EYE"), ("LEFT_EYEBROW", "RIGHT_EYEBROW"), ("LEFT_IRIS", "RIGHT_IRIS")]:
        lv = {v for e in getattr(conn, f"FACEMESH_{left}") for v in e}
        rv = {v for e in getattr(conn, f"FACEMESH_{right}") for v in e}
        assert {int(perm[v]) for v in lv} == rv
    assert perm[1] == 1 and perm[152] == 152 and perm[33] == 263 and perm[61] == 291 and perm[468] == 473


def test_flip_perm_478_equals_canonical_mesh_symmetry():
    au = pytest.importorskip("fsrbench.analysis.au_geometric")
    v = au.canonical_mesh()  # MediaPipe's canonical face model, symmetric about x = 0
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    nearest = ((mirrored[:, None] - v[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(P.flip_perm_478()[:468], nearest)


def test_flip_perm_478_matches_mediapipe_on_mirrored_faces(faces_dev):
    mp = pytest.importorskip("mediapipe")
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)

    def mesh(img: np.ndarray) -> np.ndarray | None:
        r = fm.process(np.ascontiguousarray(img))
        if not r.multi_face_landmarks:
            return None
        h, w = img.shape[:2]
        return np.array([[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark])

    errs, errs_id = [], []
    for img in _real_faces(faces_dev, 4):
        big = np.asarray(Image.fromarray(img).resize((256, 256), Image.BICUBIC))
        a, b = mesh(big), mesh(big[:, ::-1])
        if a is None or b is None:
            continue
        # MediaPipe coordinates are continuous (x in [0, W]): the 478-point default mirrors with W - x
        errs.append(np.linalg.norm(P.flip_landmarks(a, 256) - b, axis=1))
        errs_id.append(np.linalg.norm(P.flip_landmarks(a, 256, perm=range(478)) - b, axis=1))
    fm.close()
    assert len(errs) >= 2
    med, med_id = np.median(np.concatenate(errs)), np.median(np.concatenate(errs_id))
    assert med < 2.0, med  # measured 0.81 px at 256 px (identity permutation: 40 px)
    assert med_id > 3 * med


# ------------------------------------------------------------------------------------------------
# heatmaps and parsing
# ------------------------------------------------------------------------------------------------
def test_render_heatmaps_hand_computed():
    import torch

    lm = np.array([[[64.0, 32.0], [10.0, 100.0], [np.nan, 5.0]]])
    hm = P.render_heatmaps(lm, size=32, sigma=1.0)
    assert tuple(hm.shape) == (1, 3, 32, 32) and hm.dtype == torch.float32
    assert hm[0, 0, 8, 16] == 1.0  # (64,32)/4 = (16,8): x -> column, y -> row
    assert abs(float(hm[0, 0, 8, 17]) - np.exp(-0.5)) < 1e-6
    assert abs(float(hm[0, 1, 25, 2]) - np.exp(-(0.5 ** 2) / 2)) < 1e-6  # (2.5, 25): 0.5 px from column 2
    assert float(hm[0, 2].abs().sum()) == 0.0  # non-finite landmark -> empty map


def test_heatmaps_and_parsing_commute_with_flips():
    rng = np.random.default_rng(0)
    lm = rng.uniform(20, 108, (2, 68, 2))
    hm = P.render_heatmaps(lm, 32, 1.0).numpy()
    flipped = P.render_heatmaps(P.flip_landmarks(lm, 128), 32, 1.0).numpy()
    expect = hm[:, list(P.FLIP_PERM_68)][..., ::-1]
    # x -> 127 - x is x/4 -> 31.75 - x/4 on the 32 grid; a flipped grid needs 31 - x/4: 0.75 px offset
    shifted = P.render_heatmaps(P.flip_landmarks(lm, 128) - np.array([3.0, 0.0]), 32, 1.0).numpy()
    assert np.abs(shifted - expect).max() < 1e-5
    assert np.abs(flipped - expect).max() > 0.1  # the offset is real; documented in flip_landmarks


def test_parsing_from_landmarks_regions():
    lm = _face68()
    assert lm.shape == (68, 2)
    m = P.parsing_from_landmarks68(lm)
    assert m.shape == (128, 128) and m.dtype == np.uint8
    assert m[58, 44] == 4 and m[58, 84] == 5  # eye centres: image-left eye label 4, right 5
    assert m[45, 43] == 2 and m[45, 85] == 3  # brows
    assert m[80, 64] == 6  # nose, above the nostril line
    assert m[93, 56] == 7 and m[105, 64] == 9 and m[99, 64] == 8  # upper lip, lower lip, inner mouth
    assert m[75, 35] == 1 and m[30, 64] == 1  # cheek, forehead band
    assert m[2, 2] == 0 and m[125, 5] == 0  # background
    assert set(np.unique(m)) == set(range(10))
    skin = P.skin_map(m)
    assert skin.dtype == np.uint8 and skin[75, 35] == 1 and skin[58, 44] == 0
    flip_then_parse = P.parsing_from_landmarks68(P.flip_landmarks(lm, 128))
    assert (flip_then_parse != P.flip_parsing(m)).mean() < 0.01  # rasterisation ties only
    assert P.parsing_from_landmarks68(np.full((68, 2), np.nan)).max() == 0


# ------------------------------------------------------------------------------------------------
# cached dataset priors
# ------------------------------------------------------------------------------------------------
class _Tiny(Dataset):
    name = "tiny"

    def __init__(self, imgs: list[np.ndarray], with_ann: bool = False) -> None:
        super().__init__()
        self.imgs, self.with_ann = imgs, with_ann

    def ids(self) -> list[str]:
        return [f"f{k}" for k in range(len(self.imgs))]

    def load(self, sid: str) -> Sample:
        meta = {"landmarks68": _face68().astype(np.float32)} if self.with_ann else {}
        return Sample(sid, self.imgs[int(sid[1:])], meta)


class _CountingModel:
    """A stand-in landmark model that counts calls (for the caching mechanism only)."""

    def __init__(self, k: int, dim: int) -> None:
        self.id, self.num_points, self.k, self.dim, self.calls = f"fake{k}-v1", k, k, dim, 0

    def detect(self, image: np.ndarray) -> LandmarkResult:
        self.calls += 1
        if image.mean() < 1:
            return LandmarkResult.failed("no face (black image)")
        pts = np.zeros((self.k, self.dim), np.float32) + float(image[0, 0, 0])
        if self.k == 68:
            pts = _face68().astype(np.float32)
        return LandmarkResult(pts, FaceBox(10, 10, 118, 118))

    def fit(self, image: np.ndarray, box: FaceBox) -> LandmarkResult:
        self.calls += 1
        return LandmarkResult(np.full((self.k, self.dim), float(image[0, 0, 1]), np.float32), box)


def test_dataset_priors_are_cached_and_reused(tmp_path):
    imgs = [np.full((128, 128, 3), v, np.uint8) for v in (50, 0, 200)]
    ds = _Tiny(imgs)
    m68, m478 = _CountingModel(68, 2), _CountingModel(478, 3)
    pri = P.DatasetPriors(ds, root=tmp_path, models={"dlib68": m68, "mediapipe478": m478, "mediapipe478_lr": m478})
    lm = pri.get("landmarks68")
    assert m68.calls == 3 and lm.ok.tolist() == [True, False, True]
    assert lm.reasons[1] == "no face (black image)" and np.isnan(lm.values[1]).all()
    par = pri.get("parsing")
    assert par.values.shape == (3, 128, 128) and par.values[1].max() == 0 and par.values[0].max() == 9
    hr = pri.get("landmarks478_hr")
    lr = pri.get("landmarks478_lr", scale=8)
    assert hr.values.shape == (3, 478, 3) and lr.values.shape == (3, 478, 3)
    assert pri.computed == ["landmarks68", "parsing", "landmarks478_hr", "landmarks478_lr-x8"]
    calls = (m68.calls, m478.calls)

    again = P.DatasetPriors(ds, root=tmp_path, models={"dlib68": m68, "mediapipe478": m478, "mediapipe478_lr": m478})
    for name in ("landmarks68", "parsing", "landmarks478_hr"):
        np.testing.assert_array_equal(again.get(name).values, pri.get(name).values)
    np.testing.assert_array_equal(again.get("landmarks478_lr", scale=8).values, lr.values)
    assert again.computed == [] and (m68.calls, m478.calls) == calls  # loaded, not recomputed
    batch = again.batch(["f2", "f0"], ["landmarks68", "skin"])
    assert batch["landmarks68"].shape == (2, 68, 2) and batch["skin"].shape == (2, 128, 128)
    assert again.computed == ["skin"]
    with pytest.raises(ValueError, match="needs the scale"):
        again.get("landmarks478_lr")

    other = P.DatasetPriors(_Tiny(imgs[:2]), root=tmp_path, models={"dlib68": m68, "mediapipe478": m478, "mediapipe478_lr": m478})
    other.get("landmarks68")
    assert other.computed == ["landmarks68"]  # different dataset fingerprint -> its own cache


def test_cached_priors_serve_a_machine_without_the_face_models(tmp_path, monkeypatch, capsys):
    """Priors computed where the face models are installed are used where they are not (a GPU node);
    without a cached copy, or with copies from two model versions, the import error is not hidden."""
    imgs = [np.full((128, 128, 3), v, np.uint8) for v in (50, 0, 200)]
    models = {"dlib68": _CountingModel(68, 2), "mediapipe478": _CountingModel(478, 3)}
    models["mediapipe478_lr"] = models["mediapipe478"]
    pri = P.DatasetPriors(_Tiny(imgs), root=tmp_path, models=models)
    want = {n: pri.get(n, 8).values for n in ("landmarks68", "parsing", "landmarks478_lr")}

    def no_face_models(*a, **k):
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr(P, "get_landmarks", no_face_models)
    monkeypatch.setattr(P, "lr_landmark_model", no_face_models)
    here = P.DatasetPriors(_Tiny(imgs), root=tmp_path)
    for name, values in want.items():
        np.testing.assert_array_equal(here.get(name, 8).values, values)
    assert here.computed == []
    err = capsys.readouterr().err
    assert "prior 'landmarks68' of tiny: its face model cannot be loaded here (ImportError" in err
    assert "cached values from fake68-v1" in err
    with pytest.raises(ImportError, match="dlib"):  # not cached: the import error, not a silent recompute
        here.get("landmarks478_hr")
    with pytest.raises(ImportError, match="dlib"):  # another dataset has no cache
        P.DatasetPriors(_Tiny(imgs[:2]), root=tmp_path).get("landmarks68")
    models2 = {"dlib68": _CountingModel(68, 2)}
    models2["dlib68"].id = "fake68-v2"
    P.DatasetPriors(_Tiny(imgs), root=tmp_path, models=models2).get("landmarks68")
    with pytest.raises(DataError, match="several sources \\(fake68-v1, fake68-v2\\)"):
        P.DatasetPriors(_Tiny(imgs), root=tmp_path).get("landmarks68")


def test_dataset_priors_use_annotations_when_present(tmp_path):
    ds = _Tiny([np.full((128, 128, 3), 90, np.uint8)] * 2, with_ann=True)
    pri = P.DatasetPriors(ds, root=tmp_path, models={})
    lm = pri.get("landmarks68")
    assert lm.source == "annotation" and lm.ok.all()
    np.testing.assert_allclose(lm.values[0], _face68(), atol=1e-4)


def test_priors_with_real_models(tmp_path, faces_dev):
    from fsrbench.api import Unavailable

    imgs = _real_faces(faces_dev, 3)
    pri = P.DatasetPriors(_Tiny(imgs), root=tmp_path)
    try:
        hr = pri.get("landmarks478_hr")
        lm68 = pri.get("landmarks68")
    except (Unavailable, ImportError) as exc:
        pytest.skip(f"face models unavailable: {exc}")
    assert hr.ok.sum() >= 2 and lm68.ok.sum() >= 2
    assert lm68.source.startswith("dlib68") or "dlib" in lm68.source
    k = int(np.flatnonzero(lm68.ok)[0])
    par = pri.get("parsing").values[k]
    assert 0.15 < (par == 1).mean() < 0.8  # skin covers a plausible part of a face crop
    try:
        au = pri.get("au")
    except (Unavailable, ImportError) as exc:
        pytest.skip(f"AU estimator unavailable: {exc}")
    assert au.values.shape[0] == 3 and set(np.unique(au.values[au.ok])) <= {0.0, 1.0}


def test_priors_of_a_dic_annotated_celeba_tree(tmp_path):
    """End to end on a reader: DIC annotations -> landmarks68 in HR pixels -> parsing, all cached."""
    import pickle

    from fsrbench.data.celeba import CelebA

    root = tmp_path / "CelebA"
    (root / "img_celeba").mkdir(parents=True)
    ann = {}
    face = _face68()  # in a 128 frame; place it in a 256x256 image at 2x, box = whole image
    for k in range(3):
        img = np.full((256, 256, 3), 40 + 50 * k, np.uint8)
        Image.fromarray(img).save(root / "img_celeba" / f"{k:06d}.jpg", quality=95)
        ann[f"{k:06d}.jpg"] = {"bbox": [0, 0, 256, 256], "landmark": face * 2.0}
    (tmp_path / "ann.pkl").write_bytes(pickle.dumps(ann))
    ds = CelebA(data_root=str(root), annotations=str(tmp_path / "ann.pkl"), limit=2)
    assert ds.ids() == ["000000.jpg", "000001.jpg"]
    pri = P.DatasetPriors(ds, root=tmp_path / "cache", models={})
    lm = pri.get("landmarks68")
    assert lm.source == "annotation" and lm.ok.all()
    np.testing.assert_allclose(lm.values[1], face, atol=1e-4)  # mapped back into 128-px HR coordinates
    np.testing.assert_array_equal(pri.get("parsing").values[0], P.parsing_from_landmarks68(face))
    again = P.DatasetPriors(CelebA(data_root=str(root), annotations=str(tmp_path / "ann.pkl"), limit=2),
                            root=tmp_path / "cache", models={})
    again.get("parsing")
    assert again.computed == []


# ------------------------------------------------------------------------------------------------
# precomputation: chunks (resumable), processes (parallel), the `fsrbench data priors` command
# ------------------------------------------------------------------------------------------------
def test_interrupted_precompute_resumes_from_its_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "CHUNK", 2)
    imgs = [np.full((128, 128, 3), v, np.uint8) for v in (50, 0, 200, 90, 120)]
    m68 = _CountingModel(68, 2)
    pri = P.DatasetPriors(_Tiny(imgs), root=tmp_path, models={"dlib68": m68})
    assert pri.n_chunks() == 3 and pri.pending_base(["parsing"]) == ["landmarks68"]
    pri.compute_chunks("landmarks68", None, [0, 2])  # "interrupted" after two of the three chunks
    assert m68.calls == 3 and pri.missing_chunks("landmarks68") == [1]
    again = P.DatasetPriors(_Tiny(imgs), root=tmp_path, models={"dlib68": m68})
    par = again.get("parsing")
    assert m68.calls == 5  # only chunk 1 (two images) was computed now
    lm = again.get("landmarks68")
    assert lm.ok.tolist() == [True, False, True, True, True] and lm.reasons[1] == "no face (black image)"
    assert par.values.shape == (5, 128, 128) and again.is_cached("parsing") and not again.pending_base(["parsing"])
    fresh = P.DatasetPriors(_Tiny(imgs), root=tmp_path / "one-go", models={"dlib68": _CountingModel(68, 2)})
    np.testing.assert_array_equal(fresh.get("landmarks68").values, lm.values)


def test_precompute_in_parallel_equals_one_process(tmp_path, monkeypatch):
    from plugins.synthetic import ArrayDataset

    monkeypatch.setattr(P, "CHUNK", 4)  # 3 chunks over 2 spawned workers (they are told the chunk size)
    ds = ArrayDataset(10, landmarks=True)
    one = P.precompute(ds, ["landmarks68", "parsing"], root=tmp_path / "one", workers=1, progress=False)
    two = P.precompute(ds, ["landmarks68", "parsing"], root=tmp_path / "two", workers=2, progress=False)
    for name in ("landmarks68", "parsing"):
        np.testing.assert_array_equal(one[name].values, two[name].values)
        assert one[name].ok.all()
    np.testing.assert_array_equal(one["landmarks68"].values, ds.lms)


def test_data_priors_command(tmp_path, monkeypatch, capsys):
    from plugins.synthetic import write_images

    from fsrbench.cli import main

    monkeypatch.setenv("FSRBENCH_CACHE", str(tmp_path / "cache"))
    folder = write_images(tmp_path / "imgs", n=3)
    assert main(["data", "priors", f"folder:{folder}", "--priors", "parsing", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "parsing" in out and "/3 images ok" in out and str(tmp_path / "cache") in out
    assert main(["data", "priors", f"folder:{folder}", "--method", "srcnn"]) == 0  # srcnn uses no priors
    assert "no dataset priors" in capsys.readouterr().err
    assert main(["data", "priors", f"folder:{folder}", "--method", "affectsrnet"]) == 2  # needs --scale
    assert "--scale" in capsys.readouterr().err
    assert main(["data", "priors", f"folder:{folder}", "--priors", "heatmaps"]) == 2
    assert "unknown prior" in capsys.readouterr().err
    assert main(["data", "priors", f"folder:{folder}"]) == 2
