"""UFVNet (METHODS.md §10): network for every training stage (model.py), weight regressor, method."""
