"""The training engine of fsrbench (one loop for every trainable method).

* :mod:`fsrbench.train.loop` — ``train(method, scale, dataset, config=...)``: single process or torchrun/DDP,
  AMP, validation, checkpoints, exact resume;
* :mod:`fsrbench.recipes` — YAML presets + ``--config`` + ``--set`` -> resolved config and its hash (below the
  contracts, since evaluation builds a card-less weights file with the method's default recipe);
  ``fsrbench.train.config`` is its old name, the same module;
* :mod:`fsrbench.train.data` — training batches from any registered dataset (LR made on the fly);
* :mod:`fsrbench.train.checkpoints` — safetensors weights + cards, ``load_for_eval`` used by evaluation;
* :mod:`fsrbench.train.losses` — the shared losses; :mod:`fsrbench.train.ddp`, :mod:`fsrbench.train.logs`;
* :func:`unwrap` — a method's way to reach its network whether or not the engine wrapped it.

CLI: ``fsrbench train METHOD --scale S --dataset SPEC`` (docs/training.md).  Submodules are imported
on demand; importing this package is cheap.
"""
from __future__ import annotations

import sys
from typing import Any

from fsrbench import recipes as config

sys.modules[__name__ + ".config"] = config  # old path of fsrbench.recipes: `import fsrbench.train.config` works


def unwrap(model: Any) -> Any:
    """The network inside the engine's wrappers (``DistributedDataParallel``, ``torch.compile``), or ``model``
    itself.  For reading attributes and for bookkeeping only: a method runs every forward pass through the
    ``model`` the engine gave it (under DDP that is what synchronises the gradients)."""
    from torch.nn.parallel import DistributedDataParallel

    for _ in range(8):
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    return model
