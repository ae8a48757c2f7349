"""The built-in methods' one layout, and the recipes' identity.

* Every method entry point of the fsrbench distribution has the form
  ``fsrbench_baselines.<package>.method:<Name>Method``; a trainable method's package also has ``model.py`` and
  its recipe under ``<package>/configs/``.
* Every preset that existed when reference weights were first trained, and every preset added since (DIC's
  cpu-reference-init / cpu-reference, FSRNet's cpu-reference and cpu-reference-warm, MPENet's and MPEGAN's cpu-reference-x8), resolves to the same config as then:
  ``tests/data/preset_config_hashes.json`` pins ``config_hash(resolve_config(method, preset))`` (weight cards
  store resolved configs and their hashes; a recipe change must be a new preset, not an edit of an old one).
  The MPENet/MPEGAN and UFVNet pins are those after their width keys (``au_width``, ``regressor_fc``) were
  added at the paper's value. The ``tiny`` test presets are not pinned.
"""
from __future__ import annotations

import json
import re
from importlib.metadata import distribution
from pathlib import Path

import pytest

from fsrbench.registry import instantiate, methods
from fsrbench.recipes import config_hash, method_config_path, resolve_config

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
HERE = REPO / "tests"
BASELINES = REPO / "baselines"
ENTRY = re.compile(r"^fsrbench_baselines\.(?P<pkg>[a-z_0-9]+)\.method:(?P<cls>[A-Za-z0-9]+Method)$")
PINNED = json.loads((HERE / "data" / "preset_config_hashes.json").read_text())


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in distribution("fsrbench").entry_points if ep.group == "fsrbench.methods"}


def test_every_method_entry_point_has_the_one_form():
    eps = _entry_points()
    assert len(eps) >= 15
    bad = {n: v for n, v in eps.items() if not ENTRY.match(v)}
    assert not bad, f"entry points not of the form fsrbench_baselines.<method>.method:<Name>Method: {bad}"


@pytest.mark.parametrize("name", sorted(_entry_points()))
def test_package_layout(name):
    m = ENTRY.match(_entry_points()[name])
    pkg = BASELINES / m["pkg"]
    assert (pkg / "__init__.py").is_file() and (pkg / "method.py").is_file()
    method = instantiate(methods.get(name))
    assert type(method).__name__ == m["cls"] and type(method).__module__ == f"fsrbench_baselines.{m['pkg']}.method"
    if getattr(method, "trainable", False):
        assert (pkg / "model.py").is_file()
        cfg = method_config_path(method)
        assert cfg is not None and cfg.is_file() and cfg.parent == pkg.resolve() / "configs", cfg
    assert not list(BASELINES.glob("configs/*.yaml")), "recipes live in <method>/configs/"


def test_pinned_presets_resolve_to_the_same_configs():
    assert len(PINNED) >= 60
    changed = {}
    for key, want in sorted(PINNED.items()):
        name, preset = key.split("/", 1)
        got = config_hash(resolve_config(instantiate(methods.get(name)), preset))
        if got != want:
            changed[key] = got
    assert not changed, f"presets whose resolved config changed (add a new preset instead): {sorted(changed)}"
