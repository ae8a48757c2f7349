"""Old import path of :mod:`fsrbench.dist` (evaluation sharding helpers moved there)."""
from __future__ import annotations

from fsrbench.dist import Group, local_rank, rank_world

__all__ = ["Group", "local_rank", "rank_world"]
