"""Old import path of :mod:`fsrbench.stats` (the statistics moved there); kept for plugins and scripts."""
from __future__ import annotations

from fsrbench.stats import (DEFAULT_N_BOOT, DEFAULT_SEED, _as_columns, _bootstrap_p, align_tables, bootstrap_ci,
                            compare_means, mean_ci, paired_bootstrap_set, paired_comparison, resample_indices)

__all__ = ["DEFAULT_N_BOOT", "DEFAULT_SEED", "align_tables", "bootstrap_ci", "compare_means", "mean_ci",
           "paired_bootstrap_set", "paired_comparison", "resample_indices", "_as_columns", "_bootstrap_p"]
