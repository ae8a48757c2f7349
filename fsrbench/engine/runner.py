"""Old import path of :mod:`fsrbench.eval.runner` (the evaluation runner moved there)."""
from __future__ import annotations

from fsrbench.eval.runner import *  # noqa: F401,F403
