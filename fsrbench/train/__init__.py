"""The training engine of fsrbench (one loop for every trainable method).

* :mod:`fsrbench.train.loop` — ``train(method, scale, dataset, config=...)``: single process or torchrun/DDP,
  AMP, validation, checkpoints, exact resume;
* :mod:`fsrbench.train.config` — YAML presets + ``--config`` + ``--set`` -> resolved config and its hash;
* :mod:`fsrbench.train.data` — training batches from any registered dataset (LR made on the fly);
* :mod:`fsrbench.train.checkpoints` — safetensors weights + cards, ``load_for_eval`` used by evaluation;
* :mod:`fsrbench.train.losses` — the shared losses; :mod:`fsrbench.train.ddp`, :mod:`fsrbench.train.logs`.

CLI: ``fsrbench train METHOD --scale S --dataset SPEC`` (docs/training.md).  Submodules are imported
on demand; importing this package is cheap.
"""
