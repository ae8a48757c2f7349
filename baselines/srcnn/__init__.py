"""SRCNN (METHODS.md §2): method ``srcnn`` in :mod:`.method`, network in :mod:`.model`, recipe in ``configs/srcnn.yaml``."""
