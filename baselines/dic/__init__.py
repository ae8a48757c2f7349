"""DIC (METHODS.md §5): method ``dic`` in :mod:`.method`, network in :mod:`.model`, recipe in ``configs/dic.yaml``."""
