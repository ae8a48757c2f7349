"""Which metric produced each summary of a results directory, and what that metric declares about it.

The boards know no metric by name: every summary value dict of ``metrics.json`` names its metric
(``"metric": "landmarks"``; a summary without it is taken to be its own metric's name), and
:class:`MetricIndex` asks that metric -- constructed from the registry, never ``setup()`` -- for the hooks
of :class:`fsrbench.api.Metric`: its primary keys (main table, mean rank, significance marks), its
summary -> per-image column map (per-LR-size tables), :meth:`~fsrbench.api.Metric.compare` (the marks) and
the per-image columns a stored board keeps.

A metric that is not registered where the board is rendered (a ``--plugin`` metric, an uninstalled
package) is described from the stored summaries instead: its primary keys are the summaries flagged
``"primary": true`` (else the one named like the metric), and a summary whose key is also a per-image
column is the mean of that column.
"""
from __future__ import annotations

from typing import Any, Iterable

from fsrbench import registry as reg
from fsrbench.api.metric import Metric
from fsrbench.errors import PluginLoadError, RegistryError


def _stored_metric(name: str, summaries: dict[str, dict[str, Any]], columns: Iterable[str]) -> Metric:
    """A stand-in Metric for an unregistered metric, declared from its stored summaries."""
    cols = set(columns)
    flagged = tuple(k for k in sorted(summaries) if summaries[k].get("primary") is True)
    primary = flagged or ((name,) if name in summaries else ())
    cls = type(f"Stored_{name}", (Metric,), {
        "name": name, "primary": primary,
        "summary_columns": {k: k for k in sorted(summaries) if k in cols},
        "higher_is_better": bool(next(iter(summaries.values()), {}).get("higher_is_better", True)),
    })
    return cls()


def declared_metric(name: str, summaries: dict[str, dict[str, Any]] | None = None,
                    columns: Iterable[str] = ()) -> Metric:
    """The registered metric ``name`` (constructed with its defaults, not set up), or a stand-in declared from
    its stored ``summaries`` ({key: value dict}) and the per-image ``columns`` when it cannot be built here."""
    try:
        m = reg.instantiate(reg.metrics.get(name))
        if isinstance(m, Metric):
            return m
    except (RegistryError, PluginLoadError):
        pass
    except Exception:  # noqa: BLE001 - a plugin whose constructor fails here still gets its board
        pass
    return _stored_metric(name, dict(summaries or {}), columns)


def owner_of(key: str) -> str:
    """The registered metric that declares summary ``key`` (primary, mean-type or set-level); else ``key``."""
    for name in reg.metrics.names():
        try:
            cls = reg.metrics.get(name)
        except PluginLoadError:
            continue
        if isinstance(cls, type) and issubclass(cls, Metric) and (
                key in cls.primary_keys() or key in cls.summary_column_map() or key in cls.set_statistics):
            return name
    return key


class MetricIndex:
    """The metrics behind the summaries of some result cells (``metrics.json`` cells)."""

    @classmethod
    def for_key(cls, key: str, columns: Iterable[str] = ()) -> "MetricIndex":
        """The index of a lone summary ``key`` whose metric is not recorded (:func:`owner_of` finds it)."""
        return cls([{"metrics": {key: {"metric": owner_of(key)}}}], columns)

    def __init__(self, cells: Iterable[dict[str, Any]], columns: Iterable[str] = ()) -> None:
        self.owner: dict[str, str] = {}  # summary key -> metric name
        stored: dict[str, dict[str, dict[str, Any]]] = {}  # metric name -> {key: a stored value dict}
        for c in cells:
            for key, s in c.get("metrics", {}).items():
                name = str(s.get("metric", key))
                self.owner.setdefault(key, name)
                stored.setdefault(name, {}).setdefault(key, s)
        columns = list(columns)
        self.metrics: dict[str, Metric] = {name: declared_metric(name, stored[name], columns)
                                           for name in sorted(stored)}

    def metric(self, key: str) -> Metric | None:
        name = self.owner.get(key)
        return None if name is None else self.metrics[name]

    def headline(self, keys: Iterable[str]) -> list[str]:
        """The primary keys among ``keys``, in main-table order: metrics by ``board_order`` then name, each
        metric's keys in the order of its ``primary_keys()``."""
        present = set(keys)
        order = []
        for name, m in self.metrics.items():
            for i, k in enumerate(m.primary_keys()):
                if k in present and self.owner.get(k) == name:
                    order.append(((float(m.board_order), name, i), k))
        return [k for _, k in sorted(order)]

    def column(self, key: str) -> str | None:
        """The per-image column a mean-type summary is the mean of (None for set-level or unknown keys)."""
        m = self.metric(key)
        return None if m is None else m.summary_column_map().get(key)

    def compare(self, key: str, table_a: Any, table_b: Any, n_boot: int, seed: int,
                confidence: float) -> dict[str, Any] | None:
        """The owning metric's paired comparison of summary ``key`` (A - B), or None without the data for it."""
        m = self.metric(key)
        if m is None:
            return None
        return m.compare(table_a, table_b, keys=[key], n_boot=n_boot, seed=seed, confidence=confidence).get(key)

    def stored_columns(self) -> set[str]:
        """Every per-image column a stored board keeps for these metrics."""
        return {c for m in self.metrics.values() for c in m.stored_column_names()}
