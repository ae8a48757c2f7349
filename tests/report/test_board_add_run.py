"""Adding cells to a stored board (``fsrbench.report.boards.add_run``, used by scripts/reference_board.py when
one reference model is added): the merged stored result equals the one a single full run stores."""
from __future__ import annotations

import gzip
import json

import pytest

from fsrbench.cli import main as cli_main
from fsrbench.report.boards import add_run, render_stored, store_results


def _run(out, methods: str) -> None:
    rc = cli_main(["run", "--datasets", "demo", "--methods", methods, "--scales", "4,8", "--metrics", "psnr,ssim",
                   "--limit", "3", "--out", str(out), "--no-progress", "--no-leaderboard"])
    assert rc == 0


def test_added_cells_equal_a_full_run(tmp_path):
    _run(tmp_path / "a", "bicubic")
    _run(tmp_path / "b", "hr-oracle")
    _run(tmp_path / "full", "bicubic,hr-oracle")
    stored = store_results(tmp_path / "a", "m", title="t", root=tmp_path / "lb")
    doc = json.loads((stored / "metrics.json").read_text())
    doc["skipped"] = [{"dataset": "demo", "scale": 8, "method": "hr-oracle", "reason": "no weights then"}]
    (stored / "metrics.json").write_text(json.dumps(doc))

    added = add_run(tmp_path / "b", "m", root=tmp_path / "lb")
    assert added == [("demo", 4, "hr-oracle"), ("demo", 8, "hr-oracle")]
    full = store_results(tmp_path / "full", "full", title="t", root=tmp_path / "lb2")
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (stored, full))
    assert got["cells"] == want["cells"] and got["skipped"] == [] == want["skipped"]
    assert got["per_image_sha256"] != doc["per_image_sha256"]
    assert gzip.decompress((stored / "per_image.csv.gz").read_bytes()) == \
        gzip.decompress((full / "per_image.csv.gz").read_bytes())
    assert render_stored(stored) == render_stored(full)
    run = json.loads((stored / "run.json").read_text())
    assert run["added_runs"][0]["cells"] == [["demo", 4, "hr-oracle"], ["demo", 8, "hr-oracle"]]
    assert run["added_runs"][0]["spec"]["methods"] == ["hr-oracle"] and run["added_runs"][0]["git_commit"]

    # adding the same run again replaces its cells (no duplicate rows)
    add_run(tmp_path / "b", "m", root=tmp_path / "lb")
    assert gzip.decompress((stored / "per_image.csv.gz").read_bytes()) == \
        gzip.decompress((full / "per_image.csv.gz").read_bytes())


def test_a_run_under_another_protocol_is_refused(tmp_path):
    _run(tmp_path / "a", "bicubic")
    _run(tmp_path / "b", "hr-oracle")
    store_results(tmp_path / "a", "m", root=tmp_path / "lb")
    doc = json.loads((tmp_path / "b" / "metrics.json").read_text())
    doc["protocol"]["sha256"] = "0" * 64
    (tmp_path / "b" / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="differs from the stored result"):
        add_run(tmp_path / "b", "m", root=tmp_path / "lb")


def test_reference_board_finds_the_shipped_scales_without_a_stored_cell():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "reference_board", Path(__file__).resolve().parents[2] / "scripts" / "reference_board.py")
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    card = lambda entry, method, scale, scales: {  # noqa: E731
        "method": method, "scale": scale,
        "reference": {"entry": entry, "faces_val": {"by_scale": {str(s): {} for s in scales}}}}
    shipped = {"a" * 64: card("dic-x4", "dic", 4, [4]), "b" * 64: card("dic-x8", "dic", 8, [8]),
               "c" * 64: card("ufvnet", "ufvnet", 8, [4, 8])}
    used = {"a" * 64: [("dic", 4)], "c" * 64: [("ufvnet", 8)], "d" * 64: [("dic", 8)]}  # dic x8: an older file
    assert rb.missing(used, shipped) == [("dic-x8", "dic", 8, "b" * 64), ("ufvnet", "ufvnet", 4, "c" * 64)]
