"""Old import path of :mod:`fsrbench.cache` (the analysis cache moved there); kept for plugins."""
from __future__ import annotations

from fsrbench.cache import Cache, default_cache_dir, image_key

__all__ = ["Cache", "default_cache_dir", "image_key"]
