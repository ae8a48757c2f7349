"""SPARNet and SPARNet-Light-Attn3D (METHODS.md §6): methods ``sparnet`` / ``sparnet-light`` in :mod:`.method`,
network in :mod:`.model`, recipes in ``configs/sparnet.yaml`` / ``configs/sparnet-light.yaml``."""
