"""Built-in fsrbench methods (installed as ``fsrbench_baselines``); they register through entry points.

One layout for every method: ``<method>/method.py`` (the :class:`fsrbench.api.Method` subclass, named
``<Name>Method``; entry point ``fsrbench_baselines.<method>.method:<Name>Method``), ``<method>/model.py``
(the network) and ``<method>/configs/<name>.yaml`` (the training recipe); :mod:`.common` holds the blocks
and helpers several methods share.
"""
