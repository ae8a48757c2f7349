"""AffectSRNet (METHODS.md §7): RRDB + InstanceNorm backbone, MediaPipe-landmark GCN, MSAF fusions.

Methods (:mod:`.method`): ``affectsrnet`` (:class:`~.method.AffectSRNetMethod`) and the ablations
``affectsrnet-rrdb`` / ``affectsrnet-rrdb-in``. The network is in :mod:`.model`, the fusion block in
:mod:`.msaf`, the loss terms in :mod:`.losses`, the edge set in ``edges.json`` and the recipe in
``configs/affectsrnet.yaml``.
"""
