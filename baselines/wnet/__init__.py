"""W-Net (METHODS.md §9): Parsing Block, LR–Parsing Fusion (LPF), W-shaped fusions, SCAB encoder–decoder.

Method ``wnet`` (:class:`~.method.WNetMethod`). Network in :mod:`.model` (modules in :mod:`.parsing_block`,
:mod:`.lpf`, :mod:`.scab`), recipe in ``configs/wnet.yaml``.
"""
