"""Protocols are data with a stable content hash; unknown names get a 'did you mean'."""
from __future__ import annotations

import pytest
import yaml

from fsrbench.protocols import canonical_hash, get_protocol, list_protocols
from fsrbench.registry import RegistryError


def test_builtin_protocols_exist_and_define_the_conventions():
    assert {"dic-v1", "sparnet-v1", "rgb-v1"} <= set(list_protocols())
    dic = get_protocol("dic-v1")
    assert dic.metric["color"] == "y_bt601" and dic.metric["y_rounding"] == "round"
    assert dic.crop_border(8) == 8 and dic.crop_border(4) == 4
    sp = get_protocol("sparnet-v1")
    assert sp.metric["y_rounding"] == "truncate" and sp.crop_border(8) == 0
    assert get_protocol("rgb-v1").metric["color"] == "rgb"
    assert get_protocol(None).id == "dic-v1"


def test_hash_depends_on_content_not_formatting(tmp_path):
    d = get_protocol("dic-v1").definition
    path = tmp_path / "mine.yaml"
    path.write_text("# a comment\n" + yaml.safe_dump(d, default_flow_style=True, sort_keys=False))
    assert get_protocol(str(path)).sha256 == get_protocol("dic-v1").sha256
    changed = dict(d, metric=dict(d["metric"], crop_border=0))
    assert canonical_hash(changed) != get_protocol("dic-v1").sha256


def test_hash_is_pinned():
    # The released protocol must never change silently: a change needs a new id/version.
    assert get_protocol("dic-v1").sha256.startswith("43d6599cbc52")


def test_unknown_protocol_suggests():
    with pytest.raises(RegistryError, match="(?i)did you mean 'dic-v1'"):
        get_protocol("dic-v2")


def test_crop_needs_scale():
    with pytest.raises(ValueError, match="scale"):
        get_protocol("dic-v1").crop_border(None)


def test_invalid_protocol_file_is_explained(tmp_path):
    bad = dict(get_protocol("dic-v1").definition)
    bad["metric"] = dict(bad["metric"], color="xyz")
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="metric.color"):
        get_protocol(str(p))
