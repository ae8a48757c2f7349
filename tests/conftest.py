"""Shared test fixtures.

Real face images live in ``../shared/data`` beside the checkout (third-party photos: never copy them into
the repository). Tests that need them use the ``shared_data`` fixture and are skipped with a reason when
the folder is absent (as on a user's machine).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FSRBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (faces-dev, faces-train, faces-val, lpips-ref); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-face test data not found at {SHARED_DATA} (set FSRBENCH_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def faces_dev(shared_data: Path) -> Path:
    d = shared_data / "faces-dev"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private analysis cache for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("FSRBENCH_CACHE", str(d))
    return d
