"""The second attack campaign (issue 24): each test replays one attack that used to lose or falsify results
(or end the run with a traceback) and checks that it is now survived.  docs/reliability.md lists them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrbench import registry as reg
from fsrbench.eval.runner import RunSpec, run

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixture_plugins" / "hostile.py"
QUIET = {"log": lambda m: None}


def _spec(out: Path, **kw) -> RunSpec:
    base = dict(methods=["bicubic"], datasets=["demo"], scales=[8], metrics=["psnr"], out=str(out), progress=False,
                limit=4, batch_size=4)
    base.update(kw)
    return RunSpec(**base)


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fsrbench", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def _main(capsys, *args) -> tuple[int, str, str]:
    """``fsrbench ARGS`` in this process: (exit status, stdout, stderr)."""
    from fsrbench.cli import main

    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture()
def restore_registry():
    """Plugins registered by a test (even ones replacing built-ins) are gone after it."""
    saved = {k: (dict(r._entries), r._discovered) for k, r in reg.REGISTRIES.items()}
    yield
    for k, r in reg.REGISTRIES.items():
        r._entries.clear()
        r._entries.update(saved[k][0])
        r._discovered = saved[k][1]


# ------------------------------------------------------------------------------------------------
# 1. a plugin named "." / ".." / with path separators
# ------------------------------------------------------------------------------------------------
def test_item01_unsafe_names_are_refused_at_registration_and_nothing_is_deleted(tmp_path, capsys, restore_registry):
    out = tmp_path / "r"
    run(_spec(out), **QUIET)
    before = _tree(out / "cells") | {f"sr/{k}": v for k, v in _tree(out / "sr").items()}
    for cls in ("Dot", "DotDot", "Slash"):
        with pytest.raises(reg.PluginLoadError, match="not allowed"):
            reg.load_plugin(f"{HOSTILE}:{cls}")
    for name in (".", "..", "a/b", "a\\b", ".hidden", "", "x" * 65):
        with pytest.raises(reg.RegistryError, match="not allowed"):
            reg.methods.register(name, "fsrbench_baselines.bicubic:Bicubic")
    # the campaign's command: the plugin is reported as not loadable, `--methods .` is an unknown name
    code, _, err = _main(capsys, "run", "--plugin", f"{HOSTILE}:Dot", "--methods", ".", "--scales", "8",
                         "--metrics", "psnr", "--limit", "4", "--out", out, "--no-progress", "--no-leaderboard")
    assert code == 2 and "unknown method '.'" in err and "Traceback" not in err
    after = _tree(out / "cells") | {f"sr/{k}": v for k, v in _tree(out / "sr").items()}
    assert after == before
    # and no folder name the results layout makes from any text is a dot name
    from fsrbench.results import slug

    for text in (".", "..", ".x", "", "-", "a/../b"):
        s = slug(text)
        assert s not in ("", ".", "..") and not s.startswith(".") and "/" not in s


# ------------------------------------------------------------------------------------------------
# 2. a plugin taking a built-in's name
# ------------------------------------------------------------------------------------------------
def test_item02_a_plugin_cannot_take_a_builtin_name_and_never_shares_its_cells(tmp_path, restore_registry):
    with pytest.raises(reg.PluginLoadError, match="already taken.*--plugin-override"):
        reg.load_plugin(f"{HOSTILE}:ShadowBicubic")
    assert reg.methods.get("bicubic").__module__ == "fsrbench_baselines.bicubic"
    clean = run(_spec(tmp_path / "clean"), **QUIET).metrics["cells"][0]["metrics"]["psnr"]["value"]
    assert clean > 20
    out = tmp_path / "r"
    # without the flag the run reports the plugin and scores the real bicubic
    res = run(_spec(out, plugins=[f"{HOSTILE}:ShadowBicubic"]), **QUIET)
    assert res.metrics["cells"][0]["metrics"]["psnr"]["value"] == clean
    # with the explicit flag the plugin replaces it for that run ...
    shadow = run(_spec(out, plugins=[f"{HOSTILE}:ShadowBicubic"], plugin_override=True, force=True), **QUIET)
    assert shadow.metrics["cells"][0]["metrics"]["psnr"]["value"] < 10
    # ... and a later run of the built-in recomputes instead of reusing the plugin's cell
    for r in reg.REGISTRIES.values():
        r._entries.pop("bicubic", None)
        r._discovered = False
    res = run(_spec(out), **QUIET)
    assert res.computed and not res.cached
    assert res.metrics["cells"][0]["metrics"]["psnr"]["value"] == clean


def test_item02_implementation_identity():
    from fsrbench_baselines.bicubic import Bicubic

    ident = reg.implementation_id(Bicubic)
    assert ident["target"] == "fsrbench_baselines.bicubic:Bicubic" and ident["version"].startswith("fsrbench==")
    plug = reg.import_target(f"{HOSTILE}:ShadowBicubic")
    ident = reg.implementation_id(plug)
    import hashlib

    assert ident["target"].endswith(":ShadowBicubic")
    assert ident["source_sha256"] == hashlib.sha256(HOSTILE.read_bytes()).hexdigest()
