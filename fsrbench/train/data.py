"""Training data pipeline: any registered dataset -> seeded, resumable batches of (HR, LR, upsampled, priors).

* HR comes from the dataset (``Dataset.load(id).hr``, uint8 128x128 RGB); LR is made on the fly with the
  protocol's degrader :func:`fsrbench.imageio.make_lr` and the pre-upsampled input with
  :func:`fsrbench.imageio.upsample` (PIL bicubic on uint8 — the one resize path of the benchmark).
* Augmentation: random horizontal flip (config ``flip``) of the HR *before* degradation; optional random
  90° rotations (``rot90``, EDSR) and SPARNet's random zoom in/out (``random_scale: [lo, hi]``,
  :func:`random_zoom`), both only for methods without priors (the engine does not rotate/zoom priors).  Priors are
  mirrored with it by :mod:`fsrbench.data.priors` (``flip_landmarks``: x -> (W-1)-x and the scheme's index
  permutation; ``flip_parsing``: left/right labels swapped); skin maps are mirrored, AU labels unchanged.
  A prior the engine cannot mirror stops the run with a message.
* Determinism: the sample order is :class:`ResumableSampler` (a ``DistributedSampler`` seeded with
  ``seed`` and the epoch) and every random decision for one sample is drawn from
  ``numpy.random.default_rng([seed, epoch, index])`` — so batches do not depend on the number of
  DataLoader workers, and a resumed run sees exactly the batches the uninterrupted run would have seen.
* Priors (``method.train_priors`` in training, ``method.priors`` in validation) come from the dataset's
  prior cache, :class:`fsrbench.data.priors.DatasetPriors` (generated once, cached on disk).  Each prior
  ``name`` is accompanied by ``name_ok`` (bool per image: False where the prior could not be computed and
  the values are NaN/0).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from fsrbench.api import Batch, DataError, Dataset, TrainBatch, Unavailable
from fsrbench.data import open_dataset as _open_dataset

_LANDMARK_PRIORS = ("landmarks68", "landmarks478_hr", "landmarks478_lr")
_SYMMETRIC_PRIORS = ("au",)


# ------------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------------
def open_dataset(spec: str | Dataset, **options: Any) -> Dataset:
    """A dataset from a spec ``NAME[:ROOT][@SPLIT]`` (e.g. ``folder:/data/faces``, ``celeba@train``), via the
    registry; a reader's split defaults to ``train`` (:func:`fsrbench.data.opener.open_dataset`)."""
    return _open_dataset(spec, **{"default_split": "train", **options})


def split_holdout(ids: Sequence[str], n_holdout: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic (train, val) split of ``ids``: the ``n_holdout`` ids with the smallest seeded hash."""
    if n_holdout <= 0:
        return list(ids), []
    if n_holdout >= len(ids):
        raise ValueError(f"val_holdout={n_holdout} leaves no training images out of {len(ids)}; "
                         f"lower it (--set val_holdout=N) or pass --val-dataset")
    key = {i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in ids}
    val = set(sorted(ids, key=lambda i: key[i])[:n_holdout])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


# ------------------------------------------------------------------------------------------------
# priors
# ------------------------------------------------------------------------------------------------
def prior_tables(dataset: Dataset, names: Sequence[str], scale: int, progress: Any = None) -> dict[str, Any]:
    """``{name: PriorArray}`` for ``names`` from the dataset's prior cache (:class:`fsrbench.data.priors.
    DatasetPriors`); what is not cached yet is computed here (``progress`` wraps the images, e.g. tqdm)."""
    if not names:
        return {}
    from fsrbench.data.priors import DatasetPriors

    dp = DatasetPriors(dataset, progress=progress)
    return {n: dp.get(n, scale) for n in names}


def flip_prior(name: str, value: np.ndarray, width: int) -> np.ndarray:
    """Mirror one prior to match ``img[:, ::-1]`` of side ``width`` (landmarks: x -> width-1-x and the
    scheme's index permutation; parsing: left/right labels swapped; skin: mirrored; AUs unchanged)."""
    if name in _SYMMETRIC_PRIORS:
        return value
    from fsrbench.data import priors as _priors

    if name in _LANDMARK_PRIORS:
        return np.asarray(_priors.flip_landmarks(np.asarray(value, dtype=np.float32), width))
    if name == "parsing":
        return np.ascontiguousarray(_priors.flip_parsing(np.asarray(value)))
    if name == "skin":
        return np.ascontiguousarray(np.asarray(value)[..., ::-1])
    raise Unavailable(f"the engine does not know how to mirror prior {name!r}; set flip=false (--set flip=false)")


# ------------------------------------------------------------------------------------------------
# map-style dataset + sampler
# ------------------------------------------------------------------------------------------------
def random_zoom(hr: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """SPARNet's ``random_scale`` augmentation of the HR (before degradation), factor ``s`` >= 1:
    with probability 1/2 zoom in (a random ``H/s`` window, bicubic-resized back to ``H``), else zoom out (the
    image bicubic-shrunk to ``H/s`` and pasted at a random position on a black ``H`` canvas)."""
    from PIL import Image

    h, w = hr.shape[:2]
    ch, cw = max(1, int(round(h / s))), max(1, int(round(w / s)))
    if ch == h and cw == w:
        return hr
    if rng.random() < 0.5:
        y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = Image.fromarray(hr[y:y + ch, x:x + cw])
        return np.asarray(crop.resize((w, h), Image.BICUBIC))
    small = np.asarray(Image.fromarray(hr).resize((cw, ch), Image.BICUBIC))
    out = np.zeros_like(hr)
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    out[y:y + ch, x:x + cw] = small
    return out


class TrainSet(torch.utils.data.Dataset):
    """Indexable by ``(index, epoch)``; returns a dict of uint8 HR/LR/upsampled arrays and priors."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], scale: int, priors: dict[str, Any] | None = None,
                 flip: bool = True, seed: int = 0, hr_size: int = 128, rot90: bool = False,
                 random_scale: Sequence[float] | None = None, prepare: Any = None,
                 config: dict[str, Any] | None = None) -> None:
        self.dataset = dataset
        self.prepare = prepare  # method.prepare_sample (runs here, in the data workers)
        self.config = dict(config or {})
        self.rot90 = bool(rot90)
        self.random_scale = None if random_scale in (None, False) else tuple(float(v) for v in random_scale)  # type: ignore[union-attr]
        if self.random_scale is not None and (len(self.random_scale) != 2 or not 0 < self.random_scale[0] <= self.random_scale[1]):
            raise ValueError(f"random_scale must be [low, high] with 0 < low <= high, got {random_scale!r}")
        if (self.rot90 or self.random_scale) and priors:
            raise Unavailable(f"rot90/random_scale do not transform priors ({', '.join(sorted(priors))}); "
                              "set rot90: false and random_scale: null for this method")
        self.ids = list(ids)
        self.scale = int(scale)
        self.priors = dict(priors or {})  # name -> PriorArray (values for every id of the dataset)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.hr_size = int(hr_size)

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, index: int) -> Any:
        """The sample at ``index``; an unreadable image is replaced by the next readable one (deterministic),
        with a warning naming the file — one bad file must not kill a long run."""
        first: DataError | None = None
        for k in range(min(len(self.ids), 16)):
            try:
                sample = self.dataset.load(self.ids[(index + k) % len(self.ids)])
            except DataError as exc:
                first = first or exc
                continue
            if first is not None:
                warnings.warn(f"{first}; training on another image instead", stacklevel=2)
            return sample
        raise DataError(f"{self.dataset.display_name}: 16 consecutive training images are unreadable "
                        f"(first: {first}); check the dataset with `fsrbench data check`")

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        from fsrbench.imageio import make_lr, upsample

        index, epoch = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        sample = self._load(int(index))
        hr = sample.hr
        if hr.shape[:2] != (self.hr_size, self.hr_size) or hr.dtype != np.uint8:
            raise ValueError(f"{self.dataset.display_name}/{sample.id}: HR must be uint8 "
                             f"{self.hr_size}x{self.hr_size}x3, got {hr.dtype} {hr.shape}")
        pri: dict[str, np.ndarray] = {}
        for name, table in self.priors.items():
            values, ok = table.take([sample.id])
            pri[name] = np.asarray(values[0])
            pri[f"{name}_ok"] = np.asarray(bool(ok[0]))
        flipped = bool(self.flip and rng.random() < 0.5)
        if flipped:
            hr = np.ascontiguousarray(hr[:, ::-1])
            pri = {k: v if k.endswith("_ok") else flip_prior(k, v, self.hr_size) for k, v in pri.items()}
        if self.rot90:
            hr = np.ascontiguousarray(np.rot90(hr, int(rng.integers(4))))
        if self.random_scale is not None:
            hr = random_zoom(hr, float(rng.uniform(*self.random_scale)), rng)
        lr = make_lr(hr, self.scale)
        up = upsample(lr, self.hr_size)
        if self.prepare is not None:  # the method's own per-sample CPU work, on its own random stream
            extra = self.prepare({"id": sample.id, "hr": hr, "lr": lr, "up": up, "priors": dict(pri), "scale": self.scale},
                                 np.random.default_rng([self.seed, int(epoch), int(index), 1]), self.config)
            clash = sorted(set(extra or {}) & set(pri))
            if clash:
                raise ValueError(f"prepare_sample returned {clash}, which are prior names; use other names")
            pri.update({k: np.asarray(v) for k, v in (extra or {}).items()})
        return {"id": sample.id, "hr": hr, "lr": lr, "up": up, "priors": pri, "flipped": flipped}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"ids": [it["id"] for it in items]}
    for k in ("hr", "lr", "up"):
        out[k] = torch.from_numpy(np.stack([it[k] for it in items]))
    out["priors"] = {n: torch.from_numpy(np.stack([np.asarray(it["priors"][n]) for it in items]))
                     for n in (items[0]["priors"] if items else {})}
    return out


def u8_to_float(t: torch.Tensor, device: Any = None, memory_format: str = "channels_last_inputs") -> torch.Tensor:
    """uint8 images [B,H,W,3] -> float [B,3,H,W] in [0,1] on ``device``.

    ``memory_format`` (config key): ``channels_last_inputs`` keeps the strides of the NHWC source (what the
    engine always did: a channels-last tensor, which makes convolutions run channels-last), ``contiguous``
    gives NCHW-contiguous tensors, ``channels_last`` channels-last ones (with the model converted too)."""
    x = t.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if memory_format == "contiguous":
        return x.contiguous()
    if memory_format == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _prior_to_device(v: torch.Tensor, device: Any) -> torch.Tensor:
    v = v.to(device, non_blocking=True)
    return v.float() if v.dtype in (torch.float64, torch.float16) else v


def to_train_batch(raw: dict[str, Any], scale: int, device: Any, memory_format: str = "channels_last_inputs") -> TrainBatch:
    return TrainBatch(hr=u8_to_float(raw["hr"], device, memory_format), lr=u8_to_float(raw["lr"], device, memory_format),
                      upsampled=u8_to_float(raw["up"], device, memory_format), scale=scale,
                      priors={k: _prior_to_device(v, device) for k, v in raw["priors"].items()},
                      ids=list(raw["ids"]))


def to_eval_batch(raw: dict[str, Any], scale: int, device: Any, memory_format: str = "channels_last_inputs") -> Batch:
    tb = to_train_batch(raw, scale, device, memory_format)
    return tb.to_eval_batch()


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, epoch)`` and can start mid-epoch (exact resume)."""

    def __init__(self, n: int, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())
        for i in indices[self.start:]:
            yield (int(i), int(self.epoch))

    def __len__(self) -> int:
        return self.num_samples - self.start


def _worker_init(worker_id: int) -> None:
    import random

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(trainset: TrainSet, sampler: ResumableSampler, batch_size: int, num_workers: int,
                seed: int, pin_memory: bool = False, persistent_workers: bool = False,
                prefetch_factor: int | None = None) -> torch.utils.data.DataLoader:
    """The training DataLoader.  Made once per run: the sampler (iterated in the main process) decides the
    order of every epoch, so persistent workers serve all epochs; sample randomness never depends on the
    workers (see the module docstring)."""
    g = torch.Generator()
    g.manual_seed(int(seed))  # worker base seeds come from here, never from the global RNG
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"persistent_workers": bool(persistent_workers), "prefetch_factor": int(prefetch_factor or 2)}
    return torch.utils.data.DataLoader(trainset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       collate_fn=collate, drop_last=True, worker_init_fn=_worker_init,
                                       generator=g, pin_memory=pin_memory, **extra)


def steps_per_epoch(n: int, world: int, per_rank_batch: int) -> int:
    return (n // world) // per_rank_batch if n >= world else 0


class ValSet:
    """The validation images, loaded once (rank 0): uint8 HR/LR/upsampled + test-time priors."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], scale: int, priors: dict[str, Any] | None = None,
                 hr_size: int = 128) -> None:
        self.ds = TrainSet(dataset, ids, scale, priors=priors, flip=False, hr_size=hr_size)
        self._items: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.ds)

    def batches(self, batch_size: int) -> Iterator[dict[str, Any]]:
        if self._items is None:
            self._items = [self.ds[(i, 0)] for i in range(len(self.ds))]
        n = len(self._items)
        for b in range(math.ceil(n / batch_size)):
            yield collate(self._items[b * batch_size:(b + 1) * batch_size])
