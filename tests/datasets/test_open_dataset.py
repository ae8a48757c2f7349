"""One dataset opener (fsrbench.data.open_dataset) for evaluation, training, profiling, reports and the Python API."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fsrbench
from fsrbench import registry as reg
from fsrbench.api import Dataset, Sample
from fsrbench.data import open_dataset


def test_every_caller_uses_the_one_opener():
    import fsrbench.eval.runner as runner
    import fsrbench.report.grids as grids
    import fsrbench.report.profile as profile
    import fsrbench.train.data as train_data

    assert runner.open_dataset is open_dataset and train_data._open_dataset is open_dataset
    assert grids.open_dataset is open_dataset and profile.open_dataset is open_dataset


def test_training_opens_the_train_split_by_default_through_the_one_opener(monkeypatch):
    import fsrbench.train.data as train_data

    calls = []
    monkeypatch.setattr(train_data, "_open_dataset", lambda spec, **kw: calls.append((spec, kw)) or "ds")
    assert train_data.open_dataset("celeba", data_root="/x") == "ds"
    assert train_data.open_dataset("celeba@val", default_split="val") == "ds"
    assert calls == [("celeba", {"default_split": "train", "data_root": "/x"}),
                     ("celeba@val", {"default_split": "val"})]


def test_specs_instances_and_factories(tmp_path):
    for k in range(3):
        Image.fromarray(np.full((128, 128, 3), 40 * k, np.uint8)).save(tmp_path / f"f{k}.png")
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.ids() == ["f0.png", "f1.png", "f2.png"] and ds.load("f2.png").hr[0, 0, 0] == 80
    assert open_dataset(ds) is ds  # a Dataset object passes through (training with an object)
    assert fsrbench.get_dataset("demo").ids() == open_dataset("demo").ids()

    class Toy(Dataset):
        name = "toy"

        def __init__(self, arg=None, size=2):
            self.arg, self.size = arg, size

        def ids(self):
            return [f"{self.arg}-{i}" for i in range(self.size)]

        def load(self, i):
            return Sample(i, np.zeros((128, 128, 3), np.uint8), {})

    reg.datasets.register("toy", Toy)
    reg.datasets.register("toy-factory", lambda *a, **kw: Toy(*a, **kw))
    try:
        assert open_dataset("toy:x", size=3).ids() == ["x-0", "x-1", "x-2"]  # arg positional, options by keyword
        assert open_dataset("toy").ids() == ["None-0", "None-1"]  # no arg: the class's default
        with pytest.raises(ValueError, match="NAME\\[:ROOT\\]"):  # an empty arg is a typo, named with the grammar
            open_dataset("toy:")
        assert open_dataset("toy-factory:y").ids() == ["y-0", "y-1"]
    finally:
        reg.datasets.unregister("toy")
        reg.datasets.unregister("toy-factory")
    with pytest.raises(fsrbench.registry.RegistryError, match="Did you mean .demo."):
        open_dataset("dem")
