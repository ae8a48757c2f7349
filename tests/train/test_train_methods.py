"""Every trainable method, at its ``tiny`` preset, through the engine's own batch pipeline, as the engine runs it:

* wrapped in a real ``DistributedDataParallel`` (a one-process gloo group in this process): no method may read
  attributes of the wrapper, and every forward pass of the network must go through the wrapper (forwards that
  bypass it would also bypass DDP's gradient synchronisation);
* at a batch of one image (AffectSRNet's MSAF BatchNorm1d used to fail there);
* under bfloat16 autocast with :class:`fsrbench.train.fp16_guard.Fp16RangeGuard`: no op that autocast runs in
  reduced precision may produce a value fp16 cannot hold (what made AffectSRNet's Gram loss NaN under fp16),
  forward and backward, and the loss is finite.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fsrbench.api import Dataset, Sample
from fsrbench.data.priors import PriorArray, parsing_from_landmarks68, skin_map
from fsrbench.registry import instantiate, methods
from fsrbench.recipes import method_presets, resolve_config
from fsrbench.train.data import TrainSet, collate, to_train_batch
from fsrbench.train.fp16_guard import Fp16RangeGuard

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINABLE = sorted(n for n in methods.names() if getattr(methods.get(n), "trainable", False))


class _Faces(Dataset):
    name = "faces-synthetic"

    def __init__(self, n: int = 2) -> None:
        super().__init__(None)
        rng = np.random.default_rng(0)
        self.imgs = rng.integers(0, 255, size=(n, 128, 128, 3), dtype=np.uint8)

    def ids(self) -> list[str]:
        return [f"s{i}" for i in range(len(self.imgs))]

    def load(self, sample_id: str) -> Sample:
        return Sample(sample_id, self.imgs[int(sample_id[1:])], {})


def _priors(ids: list[str]) -> dict[str, PriorArray]:
    from face_shapes import face68 as _face68

    from fsrbench_baselines.affectsrnet.method import mean_shape

    n = len(ids)
    lm68 = np.repeat(_face68()[None].astype(np.float32), n, 0)
    parsing = np.stack([parsing_from_landmarks68(v) for v in lm68])
    lm478 = np.repeat((mean_shape().numpy() * 128.0)[None].astype(np.float32), n, 0)
    au = (np.random.default_rng(1).random((n, 15)) > 0.5).astype(np.float32)
    ok = np.ones(n, bool)
    table = {"landmarks68": lm68, "parsing": parsing, "skin": skin_map(parsing), "au": au,
             "landmarks478_hr": lm478, "landmarks478_lr": lm478}
    return {k: PriorArray(ids, v, ok, [""] * n, "test") for k, v in table.items()}


@pytest.fixture(scope="module")
def one_process_group():
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_every_method_has_a_tiny_preset():
    assert len(TRAINABLE) >= 13
    missing = [n for n in TRAINABLE if "tiny" not in method_presets(instantiate(methods.get(n)))]
    assert not missing


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_under_ddp_at_batch_one_is_fp16_safe(name, one_process_group, tmp_path, monkeypatch):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from fsrbench.train import unwrap

    if name in ("mpegan", "wnet", "affectsrnet", "affectsrnet-rrdb", "affectsrnet-rrdb-in"):
        from conftest import require_vgg16

        require_vgg16()
    monkeypatch.setenv("FSRBENCH_CACHE", str(tmp_path / "cache"))
    method = instantiate(methods.get(name))
    cfg = resolve_config(method, "tiny")
    ds = _Faces(1)
    names = tuple(getattr(method, "train_priors", ()) or ())
    tables = {k: v for k, v in _priors(ds.ids()).items() if k in names}
    ts = TrainSet(ds, ds.ids(), 8, priors=tables, flip=False, prepare=getattr(method, "prepare_sample", None),
                  config=cfg)
    batch = to_train_batch(collate([ts[(0, 0)]]), 8, "cpu")
    torch.manual_seed(0)
    bare = method.build_model(8, cfg).train()
    model = DDP(bare, find_unused_parameters=True)
    assert unwrap(model) is bare
    depth, bypass = [0], []
    model.register_forward_pre_hook(lambda m, a: depth.__setitem__(0, depth[0] + 1))
    model.register_forward_hook(lambda m, a, o: depth.__setitem__(0, depth[0] - 1))
    for child_name, child in bare.named_children():
        child.register_forward_pre_hook(lambda m, a, n=child_name: bypass.append(n) if depth[0] == 0 else None)
    with Fp16RangeGuard() as guard:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, terms = method.training_loss(model, batch, cfg)
        loss.backward()
    assert not bypass, f"{name}: forward passes that bypass the DDP wrapper: {sorted(set(bypass))}"
    assert guard.ops > 0 and not guard.overflows, f"{name}: beyond fp16's range: {guard.overflows[:3]}"
    assert torch.isfinite(loss.detach()) and all(np.isfinite(float(v)) for v in terms.values()), terms
    assert any(p.grad is not None for p in bare.parameters())
