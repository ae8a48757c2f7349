"""fsrbench.results: the one atomic-write helper, the per_image.csv reader and the results layout."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fsrbench
from fsrbench import results

PACKAGE = Path(fsrbench.__file__).resolve().parent


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "x.json"
    results.atomic_write_bytes(p, b"old")
    with pytest.raises(RuntimeError):
        with results.atomic_file(p) as fh:
            fh.write(b"half")
            raise RuntimeError("killed")
    assert p.read_bytes() == b"old"
    assert [q.name for q in p.parent.iterdir()] == ["x.json"]
    with results.atomic_path(p, fsync=False) as tmp:
        assert tmp.parent == p.parent and tmp.name.startswith(".x.json.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"new"


def test_only_results_py_renames_files_into_place():
    """One atomic-write helper for the package: no other module calls os.replace / tempfile.mkstemp."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "results.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("replace", "mkstemp"):
                if isinstance(node.value, ast.Name) and node.value.id in ("os", "tempfile"):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value.id}.{node.attr}")
    assert offenders == []


def test_read_per_image_keeps_ids_and_text_as_strings(tmp_path):
    p = tmp_path / "per_image.csv"
    p.write_text("dataset,scale,method,image_id,status,error,note,psnr\n"
                 "007,4,1,000123,ok,,,nan\n"
                 "007,4,1,000124,failed,data: bad,,\n")
    df = results.read_per_image(p)
    assert df["image_id"].tolist() == ["000123", "000124"]
    assert df["dataset"].tolist() == ["007", "007"] and df["method"].tolist() == ["1", "1"]
    assert df["scale"].tolist() == [4, 4]
    assert df["psnr"].isna().all() and df["error"].tolist()[1] == "data: bad"


def test_layout_paths():
    out = Path("/r")
    assert results.cell_dir(out, "folder:/x y", 4, "edsr") == out / "cells" / results.slug("folder:/x y") / "x4" / "edsr"
    assert results.sr_path(out, "demo", 8, "dic", "a/b") == out / "sr" / "demo" / "x8" / "dic" / f"{results.slug('a/b')}.png"
    assert results.slug("demo") == "demo" and results.slug("a/b") != "a/b"
