"""The command line as researchers type it (issue 25): dataset specs ``NAME[:ROOT][@SPLIT]`` for ``run``, ``train``
and ``data check``, ``run --config FILE``, per-dataset config that applies, case-insensitive lookup under
``$FSRBENCH_DATA_ROOT`` with errors naming every path tried — on trees that mimic the official CelebA and Helen
downloads (tests/layouts.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fsrbench.cli import main as cli_main
from layouts import HELEN_TEST, make_celeba, make_helen

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
CONFIG = REPO / "configs" / "celeba-helen.yaml"


@pytest.fixture()
def isolated(monkeypatch, tmp_path):
    """No user config, no $FSRBENCH_DATA_ROOT, no ./checkpoints of the user."""
    monkeypatch.delenv("FSRBENCH_CONFIG", raising=False)
    monkeypatch.delenv("FSRBENCH_DATA_ROOT", raising=False)
    monkeypatch.setattr("fsrbench.data.config.DEFAULT_CONFIG", tmp_path / "no-user-config.yaml")
    monkeypatch.setenv("FSRBENCH_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    return tmp_path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """/data with CelebA/ and Helen/ as distributed (the folder names as the docs write them)."""
    data = tmp_path_factory.mktemp("data")
    celeba = make_celeba(data / "CelebA")
    helen = make_helen(data / "Helen")
    return data, celeba, helen


def _ids(out: Path) -> dict[str, list[str]]:
    df = pd.read_csv(out / "per_image.csv", dtype={"image_id": str})
    return {d: sorted(set(g["image_id"])) for d, g in df.groupby("dataset")}


def test_spec_grammar():
    from fsrbench.data.spec import parse_spec, parse_specs

    s = parse_spec("helen:/data/Helen@test-all")
    assert (s.name, s.arg, s.split) == ("helen", "/data/Helen", "test-all")
    assert (parse_spec("celeba@test-full").name, parse_spec("celeba@test-full").split) == ("celeba", "test-full")
    s = parse_spec("folder:/data/me@home/faces")  # '@' inside a path is not a split
    assert (s.arg, s.split) == ("/data/me@home/faces", None)
    assert [str(x) for x in parse_specs("celeba:/d/CelebA@test, helen@test-all")] == ["celeba:/d/CelebA@test",
                                                                                     "helen@test-all"]
    with pytest.raises(ValueError, match="NAME"):
        parse_spec("celeba:")


def test_run_all_methods_on_celeba_and_helen_test_splits(official, isolated, capsys, monkeypatch):
    data, celeba, helen = official
    out = isolated / "run"
    common = ["--methods", "all", "--metrics", "psnr", "--scales", "4,8", "--out", str(out), "--no-progress"]
    # the mission's line with one --data-root for both: Helen's default split (DIC's 50) has no published list
    rc = cli_main(["run", "--datasets", "celeba,helen", "--data-root", str(data), *common])
    err = capsys.readouterr().err
    assert rc == 2 and "helen@test-all" in err and "Traceback" not in err
    # per-dataset specs: each its own root and split
    rc = cli_main(["run", "--datasets", f"celeba:{data / 'CelebA'}@test,helen:{data / 'Helen'}@test-all", *common])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert _ids(out) == {"celeba": celeba["test"], "helen@test-all": sorted(HELEN_TEST)}
    doc = json.loads((out / "metrics.json").read_text())
    done = {(c["dataset"], c["scale"], c["method"]) for c in doc["cells"]}
    for d in ("celeba", "helen@test-all"):
        for s in (4, 8):
            # training-free and shipped-reference-weight methods run; the others are listed with their reason
            assert {(d, s, m) for m in ("bicubic", "edsr", "srcnn")} <= done
    reused = f"(0 cells computed, {len(doc['cells'])} reused"
    reasons = {s["method"]: s["reason"] for s in doc["skipped"]}
    # every skipped method says how to get its weights: the training command, or the pending reference
    # entry's reproduce command (dic x8 while its entry is pending)
    for m, why in reasons.items():
        assert f"fsrbench train {m} " in why or "`fsrbench weights reproduce " in why, (m, why)
    # the committed experiment file on the same results directory: the same cells, all reused
    monkeypatch.setenv("FSRBENCH_DATA_ROOT", str(data))
    rc = cli_main(["run", "--config", str(CONFIG), "--metrics", "psnr", "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert reused in cap.err
    run = json.loads((out / "run.json").read_text())
    assert run["spec"]["datasets"] == ["celeba@test", "helen@test-all"] and run["spec"]["scales"] == [4, 8]
    assert run["spec"]["metrics"] == ["psnr"]  # the command line wins over the file
    fps = {f["name"]: f for f in run["resolved"]["datasets"]}
    assert fps["celeba"]["split_list"]["split"] == "celeba-test1000" and fps["helen@test-all"]["n"] == 3
    # and one --data-root that holds CelebA/ and Helen/ (any letter case) serves both
    monkeypatch.delenv("FSRBENCH_DATA_ROOT")
    rc = cli_main(["run", "--datasets", "celeba,helen@test-all", "--data-root", str(data), *common])
    assert rc == 0 and reused in capsys.readouterr().err


def test_data_root_lookup_is_case_insensitive_and_errors_name_every_path(official, isolated, monkeypatch):
    from fsrbench.data.celeba import CelebA
    from fsrbench.data.helen import Helen

    data, celeba, _ = official
    with pytest.raises(FileNotFoundError) as exc:
        CelebA()
    msg = str(exc.value)
    assert "--data-root: not given" in msg and "$FSRBENCH_DATA_ROOT is not set" in msg and "config file: none" in msg
    empty = isolated / "empty"
    empty.mkdir()
    monkeypatch.setenv("FSRBENCH_DATA_ROOT", str(empty))
    with pytest.raises(FileNotFoundError, match=f"{empty / 'celeba'} \\(any letter case\\): not found"):
        CelebA()
    monkeypatch.setenv("FSRBENCH_DATA_ROOT", str(data))  # holds CelebA/ and Helen/, as the docs write them
    assert CelebA().root == data / "CelebA" and CelebA().ids() == celeba["test"]
    assert Helen(split="test-all").root == data / "Helen"


def test_per_dataset_config_applies(official, isolated, capsys):
    data, celeba, helen = official
    cfg = isolated / "fsrbench.yaml"
    cfg.write_text(f"datasets:\n  helen: {{root: {data / 'Helen'}, split: test-all}}\n"
                   f"  celeba@test-full: {data / 'CelebA'}\n")
    from fsrbench.data.helen import Helen
    from fsrbench.data.celeba import CelebA

    h = Helen(config=str(cfg))  # the entry's split applies (it was ignored before)
    assert h.split == "test-all" and h.ids() == HELEN_TEST
    assert Helen(config=str(cfg), split="train").ids() == helen["train"]  # an explicit split wins
    c = CelebA(config=str(cfg), split="test-full")
    assert c.ids() == celeba["test"] and c.display_name == "celeba@test-full"
    # a split_file of an entry is the list of that entry's split: a train split does not inherit it
    lst = isolated / "two.txt"
    lst.write_text(f"{HELEN_TEST[1]}\n{HELEN_TEST[0]}\n")
    cfg.write_text(f"datasets:\n  helen: {{root: {data / 'Helen'}, split_file: {lst}}}\n")
    assert Helen(config=str(cfg)).ids() == [HELEN_TEST[1], HELEN_TEST[0]]
    assert Helen(config=str(cfg), split="train").ids() == helen["train"]
    # data check takes the same grammar
    rc = cli_main(["data", "check", f"helen:{data / 'Helen'}@test-all", "--no-read"])
    out = capsys.readouterr().out
    assert rc == 0 and "split test-all" in out and f"listed {len(HELEN_TEST)}" in out


def test_run_refuses_ambiguous_data_root_and_duplicate_datasets(official, isolated, capsys):
    data, _, _ = official
    rc = cli_main(["run", "--datasets", "celeba,helen@test-all", "--data-root", str(data / "CelebA"),
                   "--methods", "bicubic", "--metrics", "psnr", "--out", str(isolated / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "holds no folder" in err and "helen/" in err and "helen:/path/to/helen" in err
    rc = cli_main(["run", "--datasets", f"helen:{data / 'Helen'}@test-all,helen:{data / 'Helen'}@test-all",
                   "--methods", "bicubic", "--metrics", "psnr", "--scales", "8", "--out", str(isolated / "o")])
    assert rc == 2 and "both open 'helen@test-all'" in capsys.readouterr().err


def test_experiment_file_keys_are_checked(isolated, capsys):
    bad = isolated / "exp.yaml"
    bad.write_text("datasets: [demo]\nmethod: bicubic\n")
    rc = cli_main(["run", "--config", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'method'" in err and "Did you mean 'methods'" in err


def test_data_check_explains_what_to_download(official, isolated, capsys):
    data, celeba, _ = official
    rc = cli_main(["data", "check", "celeba"])
    err = capsys.readouterr().err
    assert rc == 1 and "where is the dataset? Tried:" in err
    assert "what to download and where it goes: CelebA" in err and "Img/img_align_celeba.zip" in err
    # the official tree with 3 of the 1,000 images of celeba-test1000: usable, the missing ones explained
    rc = cli_main(["data", "check", f"celeba:{data / 'CelebA'}", "--no-read"])
    cap = capsys.readouterr()
    assert rc == 0 and f"usable {len(celeba['test'])}" in cap.out and "997 x image file missing" in cap.out
    assert "ROOT/Img/img_align_celeba/000001.jpg" in cap.err
    rc = cli_main(["data", "check", "helen", "--data-root", str(isolated)])
    err = capsys.readouterr().err
    assert rc == 1 and "helen_1.zip" in err and "annotation.zip" in err
