"""``fsrbench run --config FILE`` settings: built-in defaults < experiment file < command line, for every option
a file may set, issue 24's --isolate and --batch-timeout included; --plugin-override is the command line's only."""
from __future__ import annotations

import dataclasses

import pytest

from fsrbench.cli import build_parser
from fsrbench.commands.run import DEFAULTS, resolve_settings
from fsrbench.eval.experiment import KEYS
from fsrbench.eval.isolate import DEFAULT_BATCH_TIMEOUT
from fsrbench.eval.runner import RunSpec


def _settings(*argv: str) -> dict:
    return resolve_settings(build_parser().parse_args(["run", *argv]))


def test_defaults_are_runspec_defaults():
    fields = {f.name: f for f in dataclasses.fields(RunSpec)}
    for key, value in DEFAULTS.items():
        f = fields[key]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert value == default, key
    assert DEFAULTS["batch_timeout"] == DEFAULT_BATCH_TIMEOUT
    # every key a file may set is a default or a metric option
    assert set(KEYS) - set(DEFAULTS) == {"fer", "fer_box", "fer_fallback", "fer_flip"}
    # resolved settings make a RunSpec as they are
    RunSpec(**_settings())


def test_file_sets_isolation_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("datasets: [demo]\nisolate: process\nbatch_timeout: 30\n")
    s = _settings("--config", str(cfg))
    assert (s["isolate"], s["batch_timeout"], s["plugin_override"]) == ("process", 30.0, False)
    s = _settings("--config", str(cfg), "--isolate", "inline", "--batch-timeout", "0")
    assert (s["isolate"], s["batch_timeout"]) == ("inline", 0.0)
    s = _settings()
    assert (s["isolate"], s["batch_timeout"]) == ("auto", DEFAULT_BATCH_TIMEOUT)


@pytest.mark.parametrize("line, message", [("isolate: thread", "`isolate:` must be one of auto, process, inline"),
                                           ("batch_timeout: -1", "`batch_timeout:` must be a number of seconds"),
                                           ("batch_timeout: true", "`batch_timeout:` must be a number of seconds"),
                                           ("plugin_override: true", "plugin_override")])
def test_bad_isolation_keys_name_the_file(tmp_path, line, message):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"datasets: [demo]\n{line}\n")
    with pytest.raises(ValueError, match="exp.yaml") as exc:
        _settings("--config", str(cfg))
    assert message in str(exc.value)


def test_plugin_override_comes_from_the_command_line_only(tmp_path):
    assert _settings("--plugin-override")["plugin_override"] is True
