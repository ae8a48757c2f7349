"""MPENet / MPEGAN (METHODS.md §8): network (model.py), AU attention maps, discriminator, methods."""
