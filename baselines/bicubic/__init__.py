"""Bicubic (METHODS.md §1): method ``bicubic`` in :mod:`.method` (no network, no recipe)."""
