"""Every exception class of fsrbench lives in fsrbench/errors.py; the old import paths still name them."""
from __future__ import annotations

import ast
from pathlib import Path

import fsrbench
from fsrbench import errors

PACKAGE = Path(fsrbench.__file__).resolve().parent
EXCEPTION_BASES = {"Exception", "BaseException", "RuntimeError", "ValueError", "KeyError", "TypeError", "OSError",
                   "LookupError"} | set(errors.__all__)


def test_every_exception_class_is_defined_in_errors_py():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & EXCEPTION_BASES:
                    found.append(f"{path.relative_to(PACKAGE)}: class {node.name}")
    assert found == [], "exception classes outside fsrbench/errors.py: " + "; ".join(found)


def test_old_import_paths_name_the_same_classes():
    import fsrbench.api
    import fsrbench.registry
    import fsrbench.train.config
    import fsrbench.train.loop
    import fsrbench.train.reference

    assert fsrbench.Unavailable is fsrbench.api.Unavailable is errors.Unavailable
    assert fsrbench.DataError is fsrbench.api.DataError is errors.DataError
    assert fsrbench.registry.RegistryError is errors.RegistryError
    assert fsrbench.registry.PluginLoadError is errors.PluginLoadError
    assert fsrbench.train.config.ConfigError is errors.ConfigError
    assert fsrbench.train.loop.TrainingDiverged is errors.TrainingDiverged
    assert fsrbench.train.reference.RecipeError is errors.RecipeError


def test_protocol_file_problems_are_protocol_errors_and_still_value_errors(tmp_path):
    import pytest

    from fsrbench.protocols import get_protocol

    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: 1\n")
    with pytest.raises(errors.ProtocolError, match="missing"):
        get_protocol(str(bad))
    assert issubclass(errors.ProtocolError, ValueError)  # callers catching ValueError keep working
