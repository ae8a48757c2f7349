"""EDSR (METHODS.md §3): method ``edsr`` in :mod:`.method`, network in :mod:`.model`, recipe in ``configs/edsr.yaml``."""
