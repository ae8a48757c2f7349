"""Contract of metrics: :class:`Metric` and the :class:`CellContext` of the cell being scored."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from fsrbench.imageio import tensor_to_uint8
from fsrbench.protocols import get_protocol
from fsrbench.stats import compare_means, mean_ci


@dataclass
class CellContext:
    """Everything a metric may need about the (dataset, scale, method) cell being scored."""

    dataset: str
    scale: int
    method: str
    protocol: Any  # fsrbench.protocols.Protocol
    device: Any = "cpu"
    cache: Any = None  # fsrbench.cache.Cache (on-disk, keyed by content hash + model id)
    options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"fer": "mini-xception"}
    meta: list[dict[str, Any]] = field(default_factory=list)  # per-image metadata of the current batch
    ids: list[str] = field(default_factory=list)  # image ids of the current batch
    memo: dict[str, Any] = field(default_factory=dict)  # per-batch scratch shared between metrics


class Metric:
    """Base class of metrics.

    ``per_image`` receives uint8 RGB arrays [B,H,W,3] (SR already clipped and rounded by the harness)
    and returns one array per column in ``columns`` (NaN = could not be computed for that image).
    ``summarize`` turns the per-image table of one cell into dataset-level numbers.

    How a metric's summaries reach the boards is declared on the metric itself (the defaults fit a metric
    that keeps the default ``summarize``, one mean per image column):

    * ``primary`` — the summary key(s) of the main table and of the mean rank (:meth:`primary_keys`);
    * ``summary_columns`` — summary key -> per-image column, for summaries that are means of a column
      (:meth:`summary_column_map`); their significance is a paired test of that column;
    * :meth:`set_statistic` — for summaries that are not means (ECM, AU F1): the statistic and the per-image
      columns it is computed from, so a paired bootstrap can test it;
    * :meth:`compare` — the paired comparison of two methods' per-image tables on the same images.

    These hooks must work on a metric that was constructed but not ``setup()`` (boards are rendered from
    stored results, where the metric's models may be absent).
    """

    kind: ClassVar[str] = "metrics"  # the registry a plugin subclass belongs to (--plugin infers it)
    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...]] = ()  # per-image columns; default (name,)
    ideal: ClassVar[float | None] = None  # value of a perfect reconstruction (hr-oracle check)
    description: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    primary: ClassVar[tuple[str, ...] | None] = None  # headline summary key(s); None: (name,)
    summary_columns: ClassVar[Mapping[str, str] | None] = None  # mean-type summary -> column; None: {name: 1st column}

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        self.protocol = get_protocol(protocol) if not hasattr(protocol, "metric") else protocol
        self.options = dict(options)

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return cls.columns or (cls.name,)

    @classmethod
    def primary_keys(cls) -> tuple[str, ...]:
        """The summary key(s) shown in the main table and counted in the mean rank."""
        return tuple(cls.primary) if cls.primary is not None else (cls.name,)

    @classmethod
    def summary_column_map(cls) -> dict[str, str]:
        """Summary key -> the per-image column it is the mean of (the default ``summarize``: name -> first column)."""
        return dict(cls.summary_columns) if cls.summary_columns is not None else {cls.name: cls.column_names()[0]}

    def set_statistic(self, key: str, table: Any) -> tuple[Callable[..., float], list[list[str]]] | None:
        """For a set-level summary ``key`` (not a mean of one column): ``(statistic, column groups)`` where
        ``statistic(*arrays)`` computes the summary from one array per column group (rows = images of
        ``table``).  None (the default) for keys that are means or unknown."""
        return None

    def compare(self, table_a: Any, table_b: Any, ctx: CellContext | None = None) -> dict[str, Any]:
        """Paired comparison of two methods' per-image tables (same images, aligned on ``image_id``):
        {summary key: effect A - B with a paired-bootstrap CI and p-values}.  Default: every mean-type
        summary of :meth:`summary_column_map` (:func:`fsrbench.stats.compare_means`)."""
        return compare_means(table_a, table_b, self.summary_column_map())

    def setup(self, device: Any = "cpu") -> None:
        """Load models once per process. Raise :class:`Unavailable` if the metric cannot run."""

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        """Dataset-level summary from the cell's per-image table. Default: mean with a 95% CI."""
        col = self.column_names()[0]
        return {self.name: mean_ci(table[col].to_numpy(dtype=float))}

    # convenience for the Python API: tensors in [0,1] -> per-image values of the primary column
    def __call__(self, sr: Any, hr: Any, scale: int | None = None) -> np.ndarray:
        ctx = CellContext(dataset="api", scale=scale or 0, method="api", protocol=self.protocol)
        if scale is None:
            self.protocol.crop_border(None)  # raises if the protocol's border crop depends on the scale
        q = str(getattr(self.protocol, "quantize", "round"))  # the protocol's SR quantisation; HR is data: rounded
        out = self.per_image(tensor_to_uint8(sr, q), tensor_to_uint8(hr), ctx)
        return out[self.column_names()[0]]
