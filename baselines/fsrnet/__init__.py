"""FSRNet (METHODS.md §4): method ``fsrnet`` in :mod:`.method`, network in :mod:`.model`, recipe in ``configs/fsrnet.yaml``."""
