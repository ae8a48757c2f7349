"""On-disk trees that mimic CelebA and Helen as they are distributed, with a few synthetic images.

* CelebA (the Google-Drive tree): ``Img/img_align_celeba/NNNNNN.jpg`` (178×218 aligned JPEGs),
  ``Eval/list_eval_partition.txt`` — the full 202,599-line official partition (train 000001–162770, val
  162771–182637, test 182638–202599), ``Anno/list_landmarks_align_celeba.txt`` (count line, header line, then
  ``name x1 y1 … x5 y5`` with the official column alignment; lines only for the images written here).
* Helen (the official zips unpacked): ``helen_1/`` … ``helen_5/`` with ``*.jpg`` (here 400×360),
  ``annotation/1.txt`` … (first line = image name, then 194 lines ``x , y``), ``trainnames.txt`` and
  ``testnames.txt`` (one image name per line).

The images are smooth synthetic patterns (seeded), never the third-party photos of ../shared/data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

N_CELEBA = 202599
CELEBA_TRAIN_END, CELEBA_VAL_END = 162770, 182637  # last ids of partitions 0 and 1
LM5 = [69, 111, 108, 111, 88, 135, 72, 152, 105, 152]  # typical aligned-CelebA 5 points


def synthetic(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b = rng.uniform(3, 9, 2)
    base = np.stack([np.sin(a * xx + seed) * 0.5 + 0.5, np.cos(b * yy) * 0.5 + 0.5, (xx * yy) ** 0.5], -1) * 255
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def celeba_name(i: int) -> str:
    return f"{i:06d}.jpg"


def make_celeba(root: Path, train: int = 4, val: int = 1, test: int = 3) -> dict[str, list[str]]:
    """The official CelebA tree under ``root`` with ``train``/``val``/``test`` images (the first ids of each
    partition; the test ones are the first of fsrbench's ``celeba-test1000`` list). Returns the names per split."""
    names = {"train": [celeba_name(i) for i in range(1, 1 + train)],
             "val": [celeba_name(i) for i in range(CELEBA_TRAIN_END + 1, CELEBA_TRAIN_END + 1 + val)],
             "test": [celeba_name(i) for i in range(CELEBA_VAL_END + 1, CELEBA_VAL_END + 1 + test)]}
    img_dir = root / "Img" / "img_align_celeba"
    img_dir.mkdir(parents=True, exist_ok=True)
    written = [n for part in names.values() for n in part]
    for k, n in enumerate(written):
        Image.fromarray(synthetic(218, 178, k)).save(img_dir / n, quality=95)
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    part = ["0" if i <= CELEBA_TRAIN_END else "1" if i <= CELEBA_VAL_END else "2" for i in range(1, N_CELEBA + 1)]
    (root / "Eval" / "list_eval_partition.txt").write_text(
        "".join(f"{celeba_name(i)} {p}\n" for i, p in zip(range(1, N_CELEBA + 1), part)))
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    rows = [f"{n} " + "".join(f"{v:5d}" for v in LM5) for n in written]
    (root / "Anno" / "list_landmarks_align_celeba.txt").write_text("\n".join([str(N_CELEBA), header, *rows]) + "\n")
    return names


HELEN_TEST = ["100032540_1", "1030333538_1", "1051618982_1"]
HELEN_TRAIN = ["100040721_1", "100466187_1", "1006623536_1", "100843687_1", "101126567_1"]


def make_helen(root: Path, train: list[str] | None = None, test: list[str] | None = None) -> dict[str, list[str]]:
    """The official Helen tree under ``root``: images spread over helen_1..helen_5, annotation/N.txt with 194
    points, trainnames.txt / testnames.txt."""
    train = list(HELEN_TRAIN if train is None else train)
    test = list(HELEN_TEST if test is None else test)
    rng = np.random.default_rng(1)
    (root / "annotation").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(train + test):
        folder = root / f"helen_{k % 5 + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic(360, 400, 100 + k)).save(folder / f"{name}.jpg", quality=95)
        pts = np.column_stack([rng.uniform(120, 260, 194), rng.uniform(110, 270, 194)])
        body = "\n".join(f"{x:.6f} , {y:.6f}" for x, y in pts)
        (root / "annotation" / f"{k + 1}.txt").write_text(f"{name}\n{body}\n")
    (root / "trainnames.txt").write_text("".join(f"{n}\n" for n in train))
    (root / "testnames.txt").write_text("".join(f"{n}\n" for n in test))
    return {"train": train, "test-all": test}
