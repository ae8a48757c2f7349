"""Fixtures of the performance benchmarks (``make bench``; never part of ``make test``).

Every benchmark reports *ratios measured in the same run* (the machine may be shared and busy), through
pytest-benchmark's ``extra_info`` and one ``PERF`` line each on stdout (``pytest -s`` shows them).
Real faces come from ``../shared/data/faces-dev`` (``$FSRBENCH_SHARED_DATA``); benchmarks that need them are
skipped when absent.  ``$FSRBENCH_BENCH_ABSOLUTE=1`` also asserts the absolute floors (pairs/s), which
depend on the machine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as fsrbench.cli does, before torch loads

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FSRBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        item.add_marker(pytest.mark.benchmark)


@pytest.fixture(scope="session")
def faces_dev() -> Path:
    d = SHARED_DATA / "faces-dev"
    if not d.is_dir():
        pytest.skip(f"real-face data not found at {d} (set FSRBENCH_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def hr_faces(faces_dev: Path) -> np.ndarray:
    from fsrbench.imageio import read_image

    return np.stack([read_image(f) for f in sorted(faces_dev.glob("*.png"))])
