"""``fsrbench train`` and dataset splits (issue 25): the train split by default, a test split only when told
explicitly, the split recorded in run.json and the weight cards, a start-up header, "did you mean" for presets."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsrbench.cli import main as cli_main
from layouts import make_celeba, make_helen

SMALL = ["--preset", "smoke", "--set", "steps=1", "--set", "batch_size=2", "--set", "val_holdout=1",
         "--set", "val_every=0", "--set", "tensorboard=false", "--set", "num_workers=0", "--device", "cpu",
         "--no-progress"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    return data, make_celeba(data / "CelebA"), make_helen(data / "Helen")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("FSRBENCH_CONFIG", raising=False)
    monkeypatch.delenv("FSRBENCH_DATA_ROOT", raising=False)
    monkeypatch.setattr("fsrbench.data.config.DEFAULT_CONFIG", tmp_path / "no-user-config.yaml")
    monkeypatch.setenv("FSRBENCH_CACHE", str(tmp_path / "cache"))


def _card(out: Path) -> dict:
    cards = sorted(out.glob("*.card.json"))
    assert cards, list(out.iterdir())
    return json.loads(cards[-1].read_text())


def test_train_uses_the_train_split_by_default(trees, tmp_path, capsys, one_torch_thread):
    data, celeba, _ = trees
    out = tmp_path / "srcnn"
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"celeba:{data / 'CelebA'}", "--out", str(out),
                   *SMALL])
    err = capsys.readouterr().err
    assert rc == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["split"] == "train" and run["dataset"]["test_split"] is False
    assert run["dataset"]["name"] == "celeba@train" and run["dataset"]["n"] == len(celeba["train"])
    card = _card(out)
    assert card["dataset"]["split"] == "train" and card["dataset"]["test_split"] is False
    # the start-up header: dataset, root, split, sizes, schedule, output folder
    assert f"dataset   celeba@train  root {data / 'CelebA'}  split train" in err
    assert f"images    {len(celeba['train']) - 1} training, 1 validation (held out of the training split)" in err
    assert f"output    {out}" in err and "1 steps, global batch 2" in err


def test_train_refuses_a_test_split_unless_told(trees, tmp_path, capsys, one_torch_thread):
    data, celeba, _ = trees
    for spec in (f"celeba:{data / 'CelebA'}@test", f"celeba:{data / 'CelebA'}@test-full",
                 f"helen:{data / 'Helen'}@test-all", f"celeba:{data / 'CelebA'}@all"):
        rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", spec, "--out", str(tmp_path / "x"), *SMALL])
        err = capsys.readouterr().err
        assert rc == 2 and "holds test images" in err and "--allow-test-split" in err, (spec, err)
        assert not (tmp_path / "x").exists()
    out = tmp_path / "on-test"
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"celeba:{data / 'CelebA'}@test",
                   "--allow-test-split", "--out", str(out), *SMALL, "--set", "val_holdout=1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "WARNING   a split that holds test images is used" in err
    card = _card(out)
    assert card["dataset"]["split"] == "test" and card["dataset"]["test_split"] is True


def test_validation_split_defaults_and_refusals(trees, tmp_path, capsys, one_torch_thread):
    data, celeba, _ = trees
    out = tmp_path / "v"
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"celeba:{data / 'CelebA'}",
                   "--val-dataset", f"celeba:{data / 'CelebA'}", "--out", str(out), *SMALL])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["dataset"]["val"]["name"] == "celeba@val"
    assert f"val_dataset: celeba:{data / 'CelebA'}@val" in (out / "config.yaml").read_text()
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"helen:{data / 'Helen'}",
                   "--val-dataset", f"helen:{data / 'Helen'}", "--out", str(tmp_path / "w"), *SMALL])
    assert rc == 2 and "has no `val` split" in capsys.readouterr().err
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", f"celeba:{data / 'CelebA'}",
                   "--val-dataset", f"helen:{data / 'Helen'}@test-all", "--out", str(tmp_path / "w"), *SMALL])
    assert rc == 2 and "holds test images" in capsys.readouterr().err


def test_preset_typo_suggests_the_preset(capsys):
    rc = cli_main(["train", "srcnn", "--scale", "8", "--dataset", "demo", "--preset", "smok", "--print-config"])
    err = capsys.readouterr().err
    assert rc == 2 and "no preset 'smok'. Did you mean 'smoke'?" in err
