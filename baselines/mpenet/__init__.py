"""MPENet / MPEGAN (METHODS.md §8): methods ``mpenet`` / ``mpegan`` in :mod:`.method`, network in
:mod:`.model` (AU attention maps in :mod:`.au_attention`, discriminator in :mod:`.discriminator`), recipes in
``configs/``."""
