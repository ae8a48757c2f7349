"""Datasets: the built-in readers (demo, folder, CelebA, Helen, FFHQ, released DIC PNGs), multi-resolution
sets, split lists, crops and priors; :func:`open_dataset` turns a spec into a ready dataset for evaluation,
training, profiling and reports alike."""
from __future__ import annotations

from fsrbench.data.opener import open_dataset

__all__ = ["open_dataset"]
