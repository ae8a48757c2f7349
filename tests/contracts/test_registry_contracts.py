"""Contract tests parametrised over the registry: every registered method, metric, dataset and face model —
built-in or installed plugin — is checked the same way, so a new plugin is tested without editing this file.

A component that cannot run on this machine (weights, data or an optional package missing) must say so with
:class:`fsrbench.api.Unavailable` / :class:`fsrbench.api.DataError`; the test then skips with that reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fsrbench import analysis
from fsrbench import registry as reg
from fsrbench.api import CellContext, DataError, Dataset, Metric, Sample, Unavailable
from fsrbench.cache import Cache
from fsrbench.protocols import get_protocol

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _names(kind: str) -> list[str]:
    return reg.registry(kind).names()


def _load(kind: str, name: str):
    try:
        return reg.registry(kind).get(name)
    except reg.PluginLoadError as exc:
        pytest.skip(f"{kind} plugin {name!r} does not import here: {exc}")


_FACES: dict[str, np.ndarray] = {}


def _faces() -> np.ndarray:
    """Four real faces (the demo set's public-domain photos), uint8 [4,128,128,3]."""
    if "hr" not in _FACES:
        from fsrbench.data.demo import DemoDataset

        ds = DemoDataset()
        _FACES["hr"] = np.stack([ds.load(i).hr for i in ds.ids()[:4]])
    return _FACES["hr"]


def _degraded(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    from fsrbench.imageio import make_lr, upsample

    return np.stack([upsample(make_lr(im, scale), 128) for im in hr])


# ------------------------------------------------------------------------------------------------
# methods
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _names("methods"))
def test_method_contract(name):
    import torch

    from fsrbench.eval.components import Components
    from fsrbench.recipes import method_presets, resolve_config

    m = reg.instantiate(_load("methods", name))
    assert m.kind == "methods" and m.name == name
    assert m.input in ("lr", "upsampled") and isinstance(m.description, str)
    assert all(isinstance(s, int) and 128 % s == 0 for s in m.scales)
    scale = 4 if m.any_scale or 4 in m.scales else m.scales[0]
    assert m.supports(scale)
    hr = _faces()[:1]
    comp = Components.create(device="cpu", cache_dir=None)
    comp.cache = Cache(None)
    try:
        batch = comp.batch(m, ["f0"], hr, scale)  # LR, upsampled input and test-time priors, as a run makes them
    except Unavailable as exc:
        pytest.skip(f"{name}: test-time priors unavailable here: {exc}")
    if m.trainable:  # untrained network of the CPU preset: the evaluation contract, not the weights
        preset = "smoke" if "smoke" in method_presets(m) else "default"
        model = m.build_model(scale, resolve_config(m, preset)).eval()
        with torch.no_grad():
            out = m.forward_sr(model, batch)
    else:
        try:
            m.setup(scale, "cpu")
        except Unavailable as exc:
            pytest.skip(f"{name}: {exc}")
        out = m.super_resolve(batch)
    assert tuple(out.shape) == (1, 3, 128, 128) and torch.isfinite(out).all()
    assert isinstance(m.info(), dict)


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _names("metrics"))
def test_metric_declarations(name):
    """The board hooks work on a metric that was constructed but not set up (stored results)."""
    cls = _load("metrics", name)
    assert isinstance(cls, type) and issubclass(cls, Metric) and cls.kind == "metrics"
    m = cls()
    cols = set(m.column_names())
    assert m.primary_keys() and all(isinstance(k, str) for k in m.primary_keys())
    assert set(m.summary_column_map().values()) <= cols
    assert set(m.stored_column_names()) <= cols
    assert not set(m.set_statistics) & set(m.summary_column_map())
    assert isinstance(float(m.board_order), float)
    assert m.set_statistic("no-such-summary", pd.DataFrame()) is None


@pytest.mark.parametrize("name", _names("metrics"))
def test_metric_scores_summarises_and_compares(name):
    cls = _load("metrics", name)
    m = cls(get_protocol(None))
    try:
        m.setup("cpu")
    except Unavailable as exc:
        pytest.skip(f"{name}: {exc}")
    hr = _faces()
    sr = _degraded(hr)
    ids = [f"f{i}" for i in range(len(hr))]
    ctx = CellContext("contract", 4, "bicubic", m.protocol, cache=Cache(None), ids=ids, meta=[{}] * len(hr))
    out = m.per_image(sr, hr, ctx)
    assert set(out) <= set(m.column_names()), set(out) - set(m.column_names())
    assert set(m.summary_column_map().values()) <= set(out)
    assert all(len(np.asarray(v)) == len(hr) for v in out.values())
    table = pd.DataFrame({"image_id": ids, **{k: list(v) for k, v in out.items()}})
    summaries = m.summarize(table, ctx)
    # primary and set-level summaries always; a mean-type summary whenever its column holds values
    declared = set(m.primary_keys()) | set(m.set_statistics) | {
        k for k, col in m.summary_column_map().items() if np.isfinite(table[col].to_numpy(dtype=float)).any()}
    assert declared <= set(summaries), declared - set(summaries)
    for s in summaries.values():
        assert {"value", "ci_low", "ci_high"} <= set(s)
    same = m.compare(table, table, n_boot=50)
    assert set(same) >= set(m.summary_column_map()) | set(m.set_statistics)
    for key, res in same.items():
        if np.isfinite(res["effect"]):
            assert res["effect"] == 0.0, key  # a method compared with itself


# ------------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _names("datasets"))
def test_dataset_contract(name, tmp_path):
    from PIL import Image

    from fsrbench.data import open_dataset

    cls = _load("datasets", name)
    assert getattr(cls, "kind", "datasets") == "datasets"
    missing = (DataError, Unavailable, FileNotFoundError)

    def opened(spec: str):
        ds = open_dataset(spec)
        return ds, ds.ids()

    try:
        ds, ids = opened(name)
    except (*missing, TypeError, ValueError) as first:
        # a dataset that needs an argument gets a folder of two faces (as `folder:/dir`)
        for i, im in enumerate(_faces()[:2]):
            Image.fromarray(im).save(tmp_path / f"face{i}.png")
        try:
            ds, ids = opened(f"{name}:{tmp_path}")
        except missing as exc:
            pytest.skip(f"{name}: no data here ({first}; {exc})")
    assert isinstance(ds, Dataset)
    assert ids and all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids)
    s = ds.load(ids[0])
    assert isinstance(s, Sample) and s.id == ids[0] and isinstance(s.meta, dict)
    assert s.hr.dtype == np.uint8 and s.hr.shape == (128, 128, 3)


# ------------------------------------------------------------------------------------------------
# face models
# ------------------------------------------------------------------------------------------------
def _model(kind: str, name: str):
    try:
        return analysis.require(kind, name)
    except Unavailable as exc:
        pytest.skip(f"{kind} model {name!r}: {exc}")


@pytest.mark.parametrize("name", _names("fer"))
def test_fer_model_contract(name):
    fer = _model("fer", name)
    assert fer.kind == "fer" and fer.id and fer.classes and len(set(fer.classes)) == len(fer.classes)
    p = np.asarray(fer.predict_proba(_faces()[:2]))
    assert p.shape == (2, len(fer.classes)) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", _names("landmarks"))
def test_landmark_model_contract(name):
    lm = _model("landmarks", name)
    assert lm.id
    hr = _faces()[0]
    det = lm.detect(hr)
    assert det.ok and det.box is not None and det.points is not None, det.reason
    fit = lm.fit(_degraded(hr[None])[0], det.box)  # a degraded version, in the HR box
    assert fit.points is not None and fit.points.shape == det.points.shape


@pytest.mark.parametrize("name", _names("identity"))
def test_identity_model_contract(name):
    ident = _model("identity", name)
    assert ident.id
    hr = _faces()[0]
    box = analysis.get_landmarks("dlib68").detect(hr).box
    a, b = ident.embed(hr, box), ident.embed(hr.copy(), box)
    assert a is not None and a.ndim == 1 and np.array_equal(a, b)  # deterministic


@pytest.mark.parametrize("name", _names("au"))
def test_au_estimator_contract(name):
    est = _model("au", name)
    assert est.kind == "au" and est.id and est.aus
    mesh = analysis.get_landmarks("mediapipe478")
    pts = [mesh.fit(im, mesh.detect(im).box).points for im in _faces()[:2]]
    scores = np.asarray(est.estimate(np.stack(pts)))
    assert scores.shape == (2, len(est.aus)) and np.isfinite(scores).all()
    assert np.asarray(est.present(scores)).shape == scores.shape
