"""AffectSRNet (METHODS.md §7): RRDB + InstanceNorm backbone, MediaPipe-landmark GCN, MSAF fusions.

Entry points: ``affectsrnet`` (:class:`AffectSRNetMethod`), ablations ``affectsrnet-rrdb`` and
``affectsrnet-rrdb-in``. The network is in :mod:`.model`, the fusion block in :mod:`.msaf`, the loss
terms in :mod:`.losses`, the edge set in ``edges.json`` and the recipe in ``configs/affectsrnet.yaml``.
"""
from .method import AffectSRNetMethod, AffectSRNetRRDB, AffectSRNetRRDBIN

__all__ = ["AffectSRNetMethod", "AffectSRNetRRDB", "AffectSRNetRRDBIN"]
