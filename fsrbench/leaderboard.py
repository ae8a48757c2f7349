"""Old import path of :mod:`fsrbench.report.leaderboard` (the boards moved into ``report/``).

``import fsrbench.leaderboard`` gives the very same module object, so plugins and scripts written against
the old path keep working, private helpers included."""
from __future__ import annotations

import sys

from fsrbench.report import leaderboard as _leaderboard

sys.modules[__name__] = _leaderboard
