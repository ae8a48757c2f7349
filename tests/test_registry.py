"""Registry: entry points, 'did you mean', one-off plugins, broken plugins reported but not fatal."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsrbench import registry as reg

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/


def test_builtins_come_from_entry_points():
    assert "bicubic" in reg.methods.names() and "hr-oracle" in reg.methods.names()
    assert reg.methods.source("bicubic").startswith("entry point")
    assert {"psnr", "ssim"} <= set(reg.metrics.names())
    assert {"demo", "folder"} <= set(reg.datasets.names())


def test_unknown_name_did_you_mean():
    with pytest.raises(reg.RegistryError) as e:
        reg.methods.get("bicubc")
    msg = str(e.value)
    assert "Did you mean 'bicubic'" in msg and "hr-oracle" in msg


def test_plugin_from_file_path():
    name = reg.load_plugin(f"{REPO}/docs/examples/nearest_plugin.py:Nearest")
    try:
        assert name == "nearest"
        assert reg.methods.get("nearest").__name__ == "Nearest"
    finally:
        reg.methods.unregister("nearest")


def test_plugin_errors_are_clear(tmp_path):
    with pytest.raises(reg.PluginLoadError, match="does not exist"):
        reg.load_plugin(f"{tmp_path}/nope.py:X")
    f = tmp_path / "boom.py"
    f.write_text("raise RuntimeError('kaboom at import')\n")
    with pytest.raises(reg.PluginLoadError, match="kaboom"):
        reg.load_plugin(f"{f}:X")
    with pytest.raises(reg.PluginLoadError, match="module:Name"):
        reg.load_plugin("no_colon_here")


def test_broken_entry_is_reported_not_fatal():
    r = reg.Registry("methods", "fsrbench.nonexistent-group")
    r.register("good", "fsrbench_baselines.bicubic.method:BicubicMethod")
    r.register("bad", "fsrbench_baselines.does_not_exist:Nope")
    ok, bad = r.load_all()
    assert set(ok) == {"good"} and "bad" in bad and "failed to import" in bad["bad"]
