"""The smaller command-line items of issue 25, one test each: explicit --weights that cannot be loaded, results
readable per the umask, which input of a cell changed, unknown names before heavy imports, valid scales listed,
--no-leaderboard, progress bars only on terminals, help and doc texts."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fsrbench.cli import main as cli_main

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
DEMO = ["--datasets", "demo", "--limit", "2", "--scales", "8", "--metrics", "psnr", "--no-progress"]


def test_explicit_weights_that_cannot_be_loaded_exit_2(tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli_main(["run", "--methods", "bicubic,srcnn", "--weights", f"srcnn={tmp_path / 'nope.safetensors'}",
                   "--out", str(out), *DEMO])
    err = capsys.readouterr().err
    assert rc == 2 and "--weights srcnn=" in err and "no such file" in err and "Traceback" not in err
    assert not (out / "metrics.json").exists()  # no empty board
    # weights of another method / scale: refused the same way
    edsr = REPO / "weights" / "fsrbench_weights" / "edsr-x4.safetensors"
    rc = cli_main(["run", "--methods", "srcnn", "--weights", f"srcnn={edsr}", "--out", str(out), *DEMO])
    assert rc == 2 and "cannot be used at x8" in capsys.readouterr().err


def test_results_are_readable_per_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "o"
        assert cli_main(["run", "--methods", "bicubic", "--out", str(out), *DEMO]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
    dirs = [p for p in out.rglob("*") if p.is_dir()]
    assert {"per_image.csv", "metrics.json", "run.json", "leaderboard.md", "summary.json"} <= {p.name for p in files}
    assert any(p.suffix == ".png" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    for p in dirs:
        assert stat.S_IMODE(p.stat().st_mode) == 0o755, p


def test_recomputation_names_the_changed_input(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli_main(["run", "--methods", "bicubic", "--out", str(out), *DEMO]) == 0
    capsys.readouterr()
    assert cli_main(["run", "--methods", "bicubic", "--out", str(out), "--protocol", "sparnet-v1", *DEMO]) == 0
    err = capsys.readouterr().err
    assert "its inputs changed (protocol dic-v1 -> sparnet-v1; use another --out to keep both)" in err
    assert cli_main(["run", "--methods", "bicubic", "--out", str(out), "--protocol", "sparnet-v1", *DEMO[:-1],
                     "--metrics", "psnr,ssim", "--no-progress"]) == 0
    assert "its inputs changed (metrics or their options)" in capsys.readouterr().err


def test_unknown_names_fail_before_heavy_imports(tmp_path):
    code = ("import sys, time; t = time.perf_counter(); from fsrbench.cli import main; "
            "rc = main(['run', '--methods', 'edsrr', '--out', sys.argv[1]]); "
            "print(rc, 'torch' in sys.modules, 'pandas' in sys.modules, round(time.perf_counter() - t, 2))")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o")], capture_output=True, text=True, env=env,
                         timeout=300)
    rc, torch_loaded, pandas_loaded, _seconds = res.stdout.split()
    assert rc == "2" and torch_loaded == "False" and pandas_loaded == "False", res.stdout + res.stderr
    assert "Did you mean 'edsr'" in res.stderr
    res = subprocess.run([sys.executable, "-c", code.replace("'--methods', 'edsrr'", "'--datasets', 'celba'"),
                          str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    assert res.stdout.split()[:2] == ["2", "False"] and "Did you mean 'celeba'" in res.stderr


def test_invalid_scale_lists_the_valid_ones(tmp_path, capsys):
    rc = cli_main(["run", "--methods", "bicubic", "--scales", "3", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    # the wording and the list are issue 24's (Protocol.valid_scales: x64 leaves no image after the border crop)
    assert rc == 2 and "scale x3 cannot be evaluated under protocol dic-v1" in err
    assert "valid scales: 2, 4, 8, 16, 32 (the protocol's own: 4, 8)" in err


def test_no_leaderboard_writes_the_file_but_prints_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli_main(["run", "--methods", "bicubic", "--out", str(out), "--no-leaderboard", *DEMO]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and "## demo — x8" in (out / "leaderboard.md").read_text()


def test_progress_bars_only_on_a_terminal(tmp_path, capsys):
    base = ["run", "--methods", "bicubic", "--datasets", "demo", "--limit", "2", "--scales", "8", "--metrics", "psnr",
            "--no-leaderboard"]
    assert cli_main([*base, "--out", str(tmp_path / "a")]) == 0  # stderr is not a terminal here
    err = capsys.readouterr().err
    assert "\r" not in err and "img/s" not in err
    assert cli_main([*base, "--out", str(tmp_path / "b"), "--progress"]) == 0
    assert "\r" in capsys.readouterr().err


def test_help_and_doc_texts(capsys):
    with pytest.raises(SystemExit):
        cli_main(["leaderboard", "--help"])
    out = capsys.readouterr().out
    assert "95% CI" in out and "95%%" not in out
    assert "--config smoke" not in (REPO / "docs" / "methods" / "srcnn.md").read_text()
    with pytest.raises(SystemExit):
        cli_main(["run", "--help"])
    out = capsys.readouterr().out
    assert "NAME[:ROOT][@SPLIT]" in out and "--config FILE" in out and "leaderboard.md is still written" in out


def test_weights_provenance_from_cards():
    import json

    from fsrbench.weights import weights_provenance

    assert weights_provenance(None) == {"comparable": True, "why": "", "test_split": False, "split": None}
    ref = json.loads((REPO / "weights" / "fsrbench_weights" / "edsr-x4.card.json").read_text())
    p = weights_provenance(ref)
    assert not p["comparable"] and "reference weights" in p["why"] and not p["test_split"]
    paper = {"steps": 150000, "batch_size": 16}
    smoke = {"kind": "best", "step": 20, "config": {"batch_size": 4, "steps": 20},
             "dataset": {"name": "celeba@train", "split": "train", "test_split": False}}
    p = weights_provenance(smoke, paper)
    assert not p["comparable"] and "20 steps x batch 4" in p["why"] and p["split"] == "train"
    full = dict(smoke, step=150000, config={"batch_size": 16, "steps": 150000})
    assert weights_provenance(full, paper)["comparable"]
    on_test = dict(full, dataset={"name": "celeba", "split": "test"})  # a card from before the test_split flag
    p = weights_provenance(on_test, paper)
    assert p["test_split"] and not p["comparable"] and "holds test images" in p["why"]


def test_summaries_record_split_size_and_provenance(tmp_path, capsys):
    import json

    out = tmp_path / "o"
    assert cli_main(["run", "--methods", "bicubic,edsr", "--out", str(out), *DEMO]) == 0
    capsys.readouterr()
    cells = {c["method"]: c for c in json.loads((out / "metrics.json").read_text())["cells"]}
    assert cells["bicubic"]["n_images"] == 2 and cells["bicubic"]["n_split"] == 16  # --limit 2 of the demo's 16
    assert cells["bicubic"]["weights_provenance"]["comparable"] is True
    assert cells["edsr"]["weights_provenance"]["comparable"] is False  # shipped reference weights
