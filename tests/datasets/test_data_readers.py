"""Dataset readers (CelebA, Helen, FFHQ, released PNGs), config, split lists, crops, multi-resolution
sets and ``fsrbench data check`` on small fixture trees written in the tests with the real layouts.

Faces come from ../shared/data/faces-dev when present, else smooth synthetic images; expected crops are
computed by hand with PIL directly (never with the reader's own helpers).
"""
from __future__ import annotations

import hashlib
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrbench.api import DataError
from fsrbench.cli import main as cli_main

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
FACES = REPO.parent / "shared" / "data" / "faces-dev"


def _faces(n: int) -> list[np.ndarray]:
    files = sorted(FACES.glob("deepface_wild_*.png")) if FACES.is_dir() else []
    out = [np.asarray(Image.open(f).convert("RGB")) for f in files[:n]]
    rng = np.random.default_rng(0)
    while len(out) < n:  # smooth synthetic stand-ins
        yy, xx = np.mgrid[0:128, 0:128] / 128.0
        base = np.stack([np.sin(6 * xx + len(out)) * 0.5 + 0.5, yy, (xx * yy) ** 0.5], -1) * 255
        out.append(np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8))
    return out


def _pil_bicubic(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))


def _save(a: np.ndarray, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


# ------------------------------------------------------------------------------------------------
# CelebA tree: official layout Img/img_align_celeba, Anno/, Eval/
# ------------------------------------------------------------------------------------------------
LM5 = [69, 111, 108, 111, 88, 135, 72, 152, 105, 152]  # typical aligned-CelebA 5 points


def _aligned(face: np.ndarray) -> np.ndarray:
    canvas = np.full((218, 178, 3), 90, np.uint8)
    canvas[20:198, :] = _pil_bicubic(face, 178)
    return canvas


def make_celeba(root: Path, names: list[str], partition: dict[str, int] | None = None) -> Path:
    faces = _faces(len(names))
    for name, f in zip(names, faces):
        _save(_aligned(f), root / "Img" / "img_align_celeba" / name, quality=95)
    part = partition or {n: 2 for n in names}
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    (root / "Eval" / "list_eval_partition.txt").write_text("".join(f"{k} {v}\n" for k, v in part.items()))
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    lines = [str(len(names)), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
             "rightmouth_x rightmouth_y"] + [f"{n} " + " ".join(str(v) for v in LM5) for n in names]
    (root / "Anno" / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    return root


CELEBA_TEST = [f"{i:06d}.jpg" for i in range(182638, 182644)]


def test_celeba_landmark_crop_matches_hand_computation(tmp_path):
    from fsrbench.data.celeba import CelebA

    root = make_celeba(tmp_path / "CelebA", CELEBA_TEST[:3])
    split = tmp_path / "mine.txt"
    split.write_text("\n".join(CELEBA_TEST[:3]) + "\n")
    ds = CelebA(data_root=str(root), split_file=str(split))
    assert ds.ids() == CELEBA_TEST[:3] and ds.skipped == []
    s = ds.load(CELEBA_TEST[0])
    img = np.asarray(Image.open(root / "Img" / "img_align_celeba" / CELEBA_TEST[0]).convert("RGB"))
    # eye centre (88.5,111), mouth centre (88.5,152): centre (88.5,131.5), side 3.2*41 = 131.2 -> 131
    # x0 = round(88.5-65.5) = 23, y0 = round(131.5-65.5) = 66
    expect = _pil_bicubic(img[66:197, 23:154], 128)
    assert s.hr.shape == (128, 128, 3) and s.hr.dtype == np.uint8
    assert np.array_equal(s.hr, expect)
    assert s.meta["box"] == [23, 66, 154, 197]
    np.testing.assert_allclose(s.meta["landmarks5"][0], [(69 - 23) * 128 / 131, (111 - 66) * 128 / 131], atol=1e-4)
    fp = ds.fingerprint()
    assert fp["split_list"]["sha256"] == hashlib.sha256(split.read_bytes()).hexdigest()
    assert fp["crop"] == "landmarks5" and fp["n"] == 3


def test_celeba_test_split_uses_pinned_list_and_reports_missing(tmp_path):
    from fsrbench.data.celeba import CelebA
    from fsrbench.data.splits import load_split

    root = make_celeba(tmp_path / "CelebA", CELEBA_TEST)
    ds = CelebA(data_root=str(root), split="test")
    assert ds.ids() == CELEBA_TEST  # the shipped list starts at 182638.jpg; only 6 exist here
    assert len(ds.skipped) == 1000 - 6
    assert all(r == "image file missing" for _, r in ds.skipped)
    assert ds.fingerprint()["split_list"]["sha256"] == load_split("celeba-test1000").sha256
    other = CelebA(data_root=str(root), split="test-full")
    assert other.ids() == CELEBA_TEST


def test_celeba_bad_data_is_reported_by_name(tmp_path):
    from fsrbench.data.celeba import CelebA

    names = CELEBA_TEST
    root = make_celeba(tmp_path / "CelebA", names)
    img_dir = root / "Img" / "img_align_celeba"
    _truncate(img_dir / names[0])                                   # truncated JPEG
    gray = np.asarray(Image.open(img_dir / names[1]).convert("L"))
    Image.fromarray(gray).save(img_dir / names[1], format="JPEG")   # grayscale JPEG
    _save(np.zeros((100, 100, 3), np.uint8), img_dir / names[2], format="JPEG")  # wrong size
    rgb = np.asarray(Image.open(img_dir / names[3]).convert("RGB")).astype(np.uint16) * 257
    Image.fromarray(rgb[..., 0]).save(img_dir / names[3], format="PNG")         # 16-bit PNG content
    (img_dir / names[4]).unlink()                                   # missing file
    ann = root / "Anno" / "list_landmarks_align_celeba.txt"
    ann.write_text("\n".join(ln for ln in ann.read_text().splitlines() if not ln.startswith(names[5])) + "\n")
    ds = CelebA(data_root=str(root), split="test-full")
    rep = ds.check()
    text = "\n".join(f"{p.file}: {p.reason}" for p in rep.problems)
    assert f"{names[4]}: image file missing" in text
    assert f"no landmark annotation line for {names[5]}" in text
    assert names[0] in text and "truncated" in text
    assert names[2] in text and "expected 178x218" in text
    assert rep.usable == 2 and rep.listed == 6
    notes = {Path(p.file).name: p.reason for p in rep.notes}
    assert "grayscale" in notes[names[1]] and "16-bit" in notes[names[3]]
    with pytest.raises(DataError, match=names[0]):
        ds.load(names[0])


def test_celeba_dic_annotation_crop_and_safe_unpickler(tmp_path):
    from fsrbench.data.celeba import CelebA

    root = tmp_path / "CelebA"
    wild = np.asarray(Image.fromarray(_faces(1)[0]).resize((300, 260)))
    _save(wild, root / "img_celeba" / "000001.jpg", quality=95)
    lm = np.stack([np.linspace(60, 200, 68), np.linspace(70, 210, 68)], 1)
    ann = {"000001.jpg": {"bbox": [50, 40, 230, 220], "landmark": lm}, "000002.jpg": {"bbox": [0, 0, 10, 10]}}
    (tmp_path / "info.pkl").write_bytes(pickle.dumps(ann))
    ds = CelebA(data_root=str(root), annotations=str(tmp_path / "info.pkl"))
    assert ds.crop_rule == "dic" and ds.ids() == ["000001.jpg"]
    assert any("000002.jpg" in f and "bbox/landmark" in r for f, r in ds.skipped)
    s = ds.load("000001.jpg")
    img = np.asarray(Image.open(root / "img_celeba" / "000001.jpg").convert("RGB"))
    assert np.array_equal(s.hr, _pil_bicubic(img[40:220, 50:230], 128))
    np.testing.assert_allclose(s.meta["landmarks68"][0], [(60 - 50) * 128 / 180, (70 - 40) * 128 / 180], atol=1e-4)

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(root),))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"000001.jpg": Evil()}))
    with pytest.raises(ValueError, match="refusing"):
        CelebA(data_root=str(root), annotations=str(tmp_path / "evil.pkl")).ids()
    assert root.is_dir()


# ------------------------------------------------------------------------------------------------
# Helen tree: helen_1/*.jpg, annotation/N.txt (name + 194 "x , y" lines), trainnames/testnames
# ------------------------------------------------------------------------------------------------
def make_helen(root: Path, names: list[str]) -> Path:
    faces = _faces(len(names))
    rng = np.random.default_rng(1)
    for k, (name, f) in enumerate(zip(names, faces), 1):
        big = np.asarray(Image.fromarray(f).resize((400, 360)))
        _save(big, root / "helen_1" / f"{name}.jpg", quality=95)
        pts = np.column_stack([rng.uniform(100, 200, 194), rng.uniform(150, 250, 194)])
        pts[0], pts[1] = (100, 150), (200, 250)  # bounding box exactly [100,200] x [150,250]
        body = "\n".join(f"{x:.3f} , {y:.3f}" for x, y in pts)
        (root / "annotation").mkdir(parents=True, exist_ok=True)
        (root / "annotation" / f"{k}.txt").write_text(f"{name}\n{body}\n")
    (root / "testnames.txt").write_text("\n".join(names) + "\n")
    (root / "trainnames.txt").write_text("")
    return root


HELEN = ["100032540_1", "1030333538_1", "1051618982_1", "106956436_1"]


def test_helen_reader_crop_split_and_bad_annotations(tmp_path):
    from fsrbench.data.helen import Helen

    root = make_helen(tmp_path / "helen", HELEN)
    with pytest.raises(FileNotFoundError, match="not published as a list"):
        Helen(data_root=str(root))
    ann = root / "annotation" / "4.txt"
    ann.write_text("\n".join(ann.read_text().splitlines()[:-1]) + "\n")  # drop one point line
    ds = Helen(data_root=str(root), split="test-all")
    assert ds.ids() == HELEN[:3]
    assert any("4.txt" in f and "193 points, expected 194" in r for f, r in ds.skipped)
    assert any(HELEN[3] in f and "no annotation file" in r for f, r in ds.skipped)
    s = ds.load(HELEN[0])
    img = np.asarray(Image.open(root / "helen_1" / f"{HELEN[0]}.jpg").convert("RGB"))
    # bbox 100x100 centred (150,200); shift -0.1*100 -> (150,190); side 130 -> x0 85, y0 125
    assert s.meta["box"] == [85, 125, 215, 255]
    assert np.array_equal(s.hr, _pil_bicubic(img[125:255, 85:215], 128))
    split = tmp_path / "test50.txt"
    split.write_text(f"{HELEN[1]}\n{HELEN[0]}\nnot_there_1\n")
    ds50 = Helen(data_root=str(root), split="test", split_file=str(split))
    assert ds50.ids() == [HELEN[1], HELEN[0]]
    assert any("not_there_1" in f for f, _ in ds50.skipped)


# ------------------------------------------------------------------------------------------------
# FFHQ tree: images1024x1024/60000/60000.png, thumbnails128x128/...
# ------------------------------------------------------------------------------------------------
def test_ffhq_reader_resizes_and_reports_wrong_size(tmp_path):
    from fsrbench.data.ffhq import FFHQ

    root = tmp_path / "ffhq"
    faces = _faces(3)
    for k, f in enumerate(faces):
        big = np.asarray(Image.fromarray(f).resize((1024, 1024), Image.BILINEAR))
        _save(big, root / "images1024x1024" / "60000" / f"{60000 + k:05d}.png", compress_level=1)
        _save(f, root / "thumbnails128x128" / "60000" / f"{60000 + k:05d}.png")
    _save(np.zeros((512, 512, 3), np.uint8), root / "images1024x1024" / "60000" / "60003.png")
    ds = FFHQ(data_root=str(root))
    assert ds.source == "images1024x1024"
    assert ds.ids() == ["60000", "60001", "60002", "60003"] and len(ds.skipped) == 996
    s = ds.load("60001")
    big = np.asarray(Image.open(root / "images1024x1024" / "60000" / "60001.png"))
    assert np.array_equal(s.hr, _pil_bicubic(big, 128))
    with pytest.raises(DataError, match="60003.png: size 512x512, expected 1024x1024"):
        ds.load("60003")
    th = FFHQ(data_root=str(root), source="thumbnails128x128", split="val")
    assert th.ids() == ["60000", "60001", "60002"]
    assert np.array_equal(th.load("60000").hr, faces[0])
    assert th.fingerprint()["sha256"] != FFHQ(data_root=str(root), split="val").fingerprint()["sha256"]


# ------------------------------------------------------------------------------------------------
# released DIC-style PNGs: HR/ + LR/, pinned by sha256
# ------------------------------------------------------------------------------------------------
def make_released(root: Path, n: int = 3) -> Path:
    for k, f in enumerate(_faces(n)):
        _save(f, root / "HR" / f"{k:03d}.png")
        _save(_pil_bicubic(f, 16), root / "LR" / f"{k:03d}.png")
    return root


def test_released_pngs_manifest_pinning(tmp_path):
    from fsrbench.data.released import ReleasedPairs

    root = make_released(tmp_path / "Helen")
    ds = ReleasedPairs(str(root))
    assert ds.ids() == ["000.png", "001.png", "002.png"]
    s = ds.load("001.png")
    assert np.array_equal(s.hr, np.asarray(Image.open(root / "HR" / "001.png")))
    assert s.meta["sha256"] == hashlib.sha256((root / "HR" / "001.png").read_bytes()).hexdigest()
    assert ds.lr("001.png", 8).shape == (16, 16, 3) and ds.lr("001.png", 4) is None
    manifest = tmp_path / "pins.sha256"
    manifest.write_text("\n".join(ds.manifest_lines()) + "\n")
    fp0 = ds.fingerprint()["crop_params"]["files_sha256"]
    img = np.asarray(Image.open(root / "HR" / "002.png")).copy()
    img[0, 0] ^= 1
    _save(img, root / "HR" / "002.png")                  # tampered
    pinned = ReleasedPairs(str(root), manifest=str(manifest))
    assert pinned.ids() == ["000.png", "001.png"]
    assert any("002.png" in f and "differs from the pinned" in r for f, r in pinned.skipped)
    assert ReleasedPairs(str(root)).fingerprint()["crop_params"]["files_sha256"] != fp0
    _save(np.zeros((64, 64, 3), np.uint8), root / "HR" / "003.png")
    with pytest.raises(DataError, match="003.png: size 64x64, expected 128x128"):
        ReleasedPairs(str(root)).load("003.png")


# ------------------------------------------------------------------------------------------------
# config, splits, crops, multi-resolution
# ------------------------------------------------------------------------------------------------
def test_config_file_resolution(tmp_path, monkeypatch):
    from fsrbench.data.celeba import CelebA
    from fsrbench.data.config import resolve_root

    monkeypatch.delenv("FSRBENCH_CONFIG", raising=False)
    monkeypatch.delenv("FSRBENCH_DATA_ROOT", raising=False)
    monkeypatch.setattr("fsrbench.data.config.DEFAULT_CONFIG", tmp_path / "nope.yaml")
    make_celeba(tmp_path / "data" / "CelebA", CELEBA_TEST[:2])
    cfg = tmp_path / "fsrbench.yaml"
    cfg.write_text("datasets:\n  celeba: data/CelebA\n  helen: {root: data/helen, split_file: x.txt}\n")
    root, extra = resolve_root("celeba", config=str(cfg))
    assert root == tmp_path / "data" / "CelebA" and extra == {}
    with pytest.raises(FileNotFoundError, match=r"helen: .*data/helen.*fix `helen:`"):
        resolve_root("helen", config=str(cfg))
    with pytest.raises(FileNotFoundError, match="--data-root /path/to/ffhq"):
        resolve_root("ffhq", config=str(cfg))
    monkeypatch.setenv("FSRBENCH_CONFIG", str(cfg))
    assert CelebA(split="test-full").ids() == CELEBA_TEST[:2]
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        resolve_root("celeba", config=str(cfg))


def test_split_lists_are_pinned(tmp_path, monkeypatch):
    import fsrbench.data.splits as splits

    sl = splits.load_split("ffhq-test1000")
    assert sl.ids[0] == "60000" and sl.ids[-1] == "60999" and len(sl.ids) == 1000
    c = splits.load_split("celeba-test1000")
    assert c.ids[0] == "182638.jpg" and c.ids[-1] == "183637.jpg"
    copy = tmp_path / "splits"
    shutil.copytree(splits.SPLIT_DIR, copy)
    (copy / "ffhq-test1000.txt").write_text((copy / "ffhq-test1000.txt").read_text().replace("60500", "69999"))
    monkeypatch.setattr(splits, "SPLIT_DIR", copy)
    with pytest.raises(ValueError, match="was modified"):
        splits.load_split("ffhq-test1000")
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match="duplicate"):
        splits.read_split_file(dup)


def test_crop_padding_and_detect_crop():
    from fsrbench.data.crops import Box, crop_box, detect_crop_info

    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    out = crop_box(img, Box(-2, -1, 4, 5), pad="edge")
    assert out.shape == (6, 6, 3)
    assert np.array_equal(out[1:, 2:], img[0:5, 0:4])
    assert np.array_equal(out[0, 2:], img[0, 0:4]) and np.array_equal(out[1:, 0], img[:, 0])
    noise = np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    hr, info = detect_crop_info(noise)
    assert hr.shape == (128, 128, 3) and info["crop"] == "center"


def test_detect_crop_on_real_face(faces_dev):
    from fsrbench.data.crops import detect_crop_info

    face = np.asarray(Image.open(sorted(faces_dev.glob("deepface_wild_*.png"))[0]).convert("RGB"))
    canvas = np.full((400, 300, 3), 128, np.uint8)
    canvas[150:278, 100:228] = face  # face off-centre in a bigger picture
    hr, info = detect_crop_info(canvas)
    assert info["crop"] == "detect", info
    x0, y0, x1, y1 = info["box"]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 120 < cx < 210 and 160 < cy < 270  # centred on the pasted face, not on the canvas
    assert hr.shape == (128, 128, 3)


def test_multires_pairs_and_lr_sizes(tmp_path):
    from fsrbench.data.multires import MultiRes, lr_sizes, pairs
    from fsrbench.data.released import ReleasedPairs

    assert lr_sizes("MR8") == (8, 16, 24, 32, 40, 48, 56, 64)
    assert lr_sizes("mr7") == (16, 24, 32, 40, 48, 56, 64) and lr_sizes("MR3") == (16, 32, 64)
    assert len(pairs(["a", "b"], "MR8")) == 16
    mr = MultiRes(ReleasedPairs(str(make_released(tmp_path / "H", 2))), "MR7")
    ids = mr.ids()
    assert len(ids) == 14 and ids[0] == "000.png@16"
    s = mr.load("001.png@40")
    assert s.meta["lr"].shape == (40, 40, 3) and s.meta["lr_size"] == 40
    assert np.array_equal(s.meta["lr"], _pil_bicubic(s.hr, 40))


# ------------------------------------------------------------------------------------------------
# fsrbench data check
# ------------------------------------------------------------------------------------------------
def test_data_check_cli_good_and_broken_trees(tmp_path, capsys):
    from fsrbench.protocols import get_protocol

    root = make_celeba(tmp_path / "CelebA", CELEBA_TEST)
    (root / "Img" / "img_align_celeba" / CELEBA_TEST[2]).unlink()
    rc = cli_main(["data", "check", "celeba", "--data-root", str(root), "--split", "test-full"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "listed 6  usable 5  skipped 1" in out
    assert f"{CELEBA_TEST[2]}: image file missing" in out and "fix: restore" in out
    assert get_protocol("dic-v1").sha256 in out
    assert cli_main(["data", "check", "celeba", "--data-root", str(root), "--split", "test-full", "--strict"]) == 1
    capsys.readouterr()
    rc = cli_main(["data", "check", "celeba", "--data-root", str(root)])  # pinned 1000-list
    out = capsys.readouterr().out
    assert rc == 0 and "celeba-test1000" in out and "skipped 995" in out and "… and" in out

    empty = tmp_path / "empty"
    empty.mkdir()
    rc = cli_main(["data", "check", "celeba", "--data-root", str(empty)])
    err = capsys.readouterr().err
    assert rc == 1 and "no img_align_celeba/ folder" in err and "unzip img_align_celeba.zip" in err

    for f in (root / "Img" / "img_align_celeba").iterdir():
        _truncate(f)
    rc = cli_main(["data", "check", "celeba", "--data-root", str(root), "--split", "test-full"])
    out = capsys.readouterr().out
    assert rc == 1 and "UNUSABLE" in out and "re-download" in out

    helen = make_helen(tmp_path / "helen", HELEN[:2])
    rc = cli_main(["data", "check", "helen", "--data-root", str(helen)])
    assert rc == 1 and "split_file=FILE" in capsys.readouterr().err
    lst = tmp_path / "t.txt"
    lst.write_text(HELEN[0] + "\n")
    rc = cli_main(["data", "check", "helen", "--data-root", str(helen), "-o", f"split_file={lst}"])
    out = capsys.readouterr().out
    assert rc == 0 and "usable 1" in out and hashlib.sha256(lst.read_bytes()).hexdigest() in out


def test_data_check_released_writes_manifest(tmp_path, capsys):
    root = make_released(tmp_path / "CelebA")
    man = tmp_path / "m.sha256"
    rc = cli_main(["data", "check", f"released:{root}", "--write-manifest", str(man)])
    assert rc == 0 and "usable 3" in capsys.readouterr().out
    lines = man.read_text().splitlines()
    assert len(lines) == 6
    assert f"{hashlib.sha256((root / 'LR' / '000.png').read_bytes()).hexdigest()}  LR/000.png" in lines
    rc = cli_main(["data", "check", f"released:{root}", "-o", f"manifest={man}", "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and '"usable": 3' in out


def test_folder_crop_detect_option(tmp_path, faces_dev):
    pytest.importorskip("fsrbench.data.folder")
    from fsrbench.data.folder import FolderDataset

    face = np.asarray(Image.open(sorted(faces_dev.glob("deepface_wild_*.png"))[1]).convert("RGB"))
    canvas = np.full((300, 300, 3), 60, np.uint8)
    canvas[100:228, 40:168] = face
    _save(canvas, tmp_path / "imgs" / "a.png")
    buf = io.BytesIO()
    ds = FolderDataset(str(tmp_path / "imgs"), crop="detect")
    hr = ds.load("a.png").hr
    assert hr.shape == (128, 128, 3)
    assert not np.array_equal(hr, _pil_bicubic(canvas, 128))  # not the centre-square fallback
    del buf


def test_run_on_celeba_is_restricted_to_the_test_split(tmp_path, capsys):
    import csv
    import json

    names = CELEBA_TEST[:3] + ["000001.jpg", "000002.jpg"]  # 3 test-partition + 2 train-partition images
    root = make_celeba(tmp_path / "CelebA", names, {n: (2 if n.startswith("18") else 0) for n in names})
    out = tmp_path / "run"
    rc = cli_main(["run", "--datasets", "celeba", "--data-root", str(root), "--methods", "bicubic",
                   "--metrics", "psnr", "--scales", "8", "--out", str(out), "--no-progress"])
    capsys.readouterr()
    assert rc == 0
    with (out / "per_image.csv").open() as fh:
        ids = sorted(r["image_id"] for r in csv.DictReader(fh))
    assert ids == CELEBA_TEST[:3]
    assert "celeba-test1000" in json.dumps(json.loads((out / "run.json").read_text()))
