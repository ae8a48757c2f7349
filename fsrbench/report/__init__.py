"""Reports built from a results directory: cost profile (profile.py), comparison grids (grids.py),
plots (plots.py) and the self-contained HTML page (html.py)."""
