"""The training engine of fsrbench (one loop for every trainable method).

* :mod:`fsrbench.train.loop` — ``train(method, scale, dataset, config=...)``: single process or torchrun/DDP,
  AMP, validation, checkpoints, exact resume;
* :mod:`fsrbench.recipes` — YAML presets + ``--config`` + ``--set`` -> resolved config and its hash (below the
  contracts, since evaluation builds a card-less weights file with the method's default recipe);
  ``fsrbench.train.config`` is its old name, the same module;
* :mod:`fsrbench.train.data` — training batches from any registered dataset (LR made on the fly);
* :mod:`fsrbench.train.checkpoints` — safetensors weights + cards, ``load_for_eval`` used by evaluation;
* :mod:`fsrbench.train.losses` — the shared losses; :mod:`fsrbench.train.ddp`, :mod:`fsrbench.train.logs`.

CLI: ``fsrbench train METHOD --scale S --dataset SPEC`` (docs/training.md).  Submodules are imported
on demand; importing this package is cheap.
"""
import sys

from fsrbench import recipes as config

sys.modules[__name__ + ".config"] = config  # old path of fsrbench.recipes: `import fsrbench.train.config` works
