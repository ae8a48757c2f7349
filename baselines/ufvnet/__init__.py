"""UFVNet (METHODS.md §10): method ``ufvnet`` in :mod:`.method`, network for every training stage in :mod:`.model`
(weight regressor in :mod:`.regressor`), recipe in ``configs/ufvnet.yaml``."""
