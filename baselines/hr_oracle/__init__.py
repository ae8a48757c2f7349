"""``hr-oracle`` (a sanity reference, not a method) in :mod:`.method` (no network, no recipe)."""
