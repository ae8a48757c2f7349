"""Contract of metrics: :class:`Metric` and the :class:`CellContext` of the cell being scored."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from fsrbench.imageio import tensor_to_uint8
from fsrbench.protocols import get_protocol
from fsrbench.stats import DEFAULT_SEED, align_tables, mean_ci, paired_bootstrap_set, paired_comparison


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

    How a metric's summaries reach the boards is declared on the metric itself, and the leaderboard asks
    the metric (:mod:`fsrbench.report.leaderboard` knows no metric by name).  The defaults fit a metric that
    keeps the default ``summarize``, one mean per image column:

    * ``primary`` — the summary key(s) of the main table and of the mean rank (:meth:`primary_keys`);
      ``board_order`` places the metric's columns in the main table (built-ins 10-80, plugins after them);
    * ``summary_columns`` — summary key -> per-image column, for summaries that are means of a column
      (:meth:`summary_column_map`); their significance is a paired test of that column;
    * ``set_statistics`` + :meth:`set_statistic` — for summaries that are not means (ECM, AU F1): the
      statistic and the per-image columns it is computed from, so a paired bootstrap can test it;
    * :meth:`compare` — the paired comparison of two methods' per-image tables on the same images (the
      board's significance marks call it with the board's ``n_boot``, ``seed`` and confidence);
    * ``stored_columns`` (:meth:`stored_column_names`) — the per-image columns a stored board keeps
      (``leaderboards/results/*/per_image.csv.gz``) so that :meth:`compare` can run on it later.

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
    set_statistics: ClassVar[tuple[str, ...]] = ()  # summary keys that set_statistic() computes
    # [CHOICE] metric.board_order: where the metric's primary keys sit in the main table (ascending, then name)
    board_order: ClassVar[float] = 1000.0
    stored_columns: ClassVar[tuple[str, ...] | None] = None  # kept in stored boards; None: summary_column_map values
    compare_n_boot: ClassVar[int] = 2000  # resamples of compare() unless the option n_boot or the caller says

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

    @classmethod
    def stored_column_names(cls) -> tuple[str, ...]:
        """The per-image columns a stored board keeps: what :meth:`compare` (and the report's plots) read."""
        if cls.stored_columns is not None:
            return tuple(cls.stored_columns)
        return tuple(dict.fromkeys(cls.summary_column_map().values()))

    def set_statistic(self, key: str, table: Any) -> tuple[Callable[..., float], list[list[str]]] | None:
        """For a set-level summary ``key`` (one of ``set_statistics``, not a mean of one column):
        ``(statistic, column groups)`` where ``statistic(*arrays)`` computes the summary from one array per
        column group (rows = images of ``table``).  None (the default) for keys that are means or unknown.

        The statistic may carry ``statistic.resampled(*arrays, idx)``, its value on every bootstrap resample at
        once (see :func:`fsrbench.stats.paired_bootstrap_set`); ECM does, for speed."""
        return None

    def resampling(self, ctx: CellContext | None = None, n_boot: int | None = None,
                   seed: int | None = None) -> tuple[int, int]:
        """(n_boot, seed) of :meth:`compare`: the caller's, else ``ctx.options``/the metric's options, else
        ``compare_n_boot`` and seed 0."""
        n_boot = int(n_boot if n_boot is not None else self.options.get("n_boot", self.compare_n_boot))
        if seed is None:
            seed = (getattr(ctx, "options", None) or {}).get("seed", self.options.get("seed", DEFAULT_SEED))
        return n_boot, int(seed)

    def compare(self, table_a: Any, table_b: Any, ctx: CellContext | None = None, *,
                keys: Any = None, n_boot: int | None = None, seed: int | None = None,
                confidence: float = 0.95) -> dict[str, Any]:
        """Paired comparison of two methods' per-image tables (same images, aligned on ``image_id``):
        {summary key: effect A - B with a paired-bootstrap CI (``confidence``) and p-values}.

        ``keys`` (default: every key of :meth:`summary_column_map` and ``set_statistics``) picks the summaries.
        A mean-type key is :func:`fsrbench.stats.paired_comparison` of its column (bootstrap + Wilcoxon); a
        set-level key is :func:`fsrbench.stats.paired_bootstrap_set` of :meth:`set_statistic` on the images
        where both tables have every column it reads (``n_missing`` counts the others).  Keys whose columns
        are absent are left out.  ``n_boot``: the option ``n_boot``, else ``compare_n_boot``; ``seed``:
        ``ctx.options["seed"]``, else the option ``seed``, else 0."""
        a, b = align_tables(table_a, table_b)
        n_boot, seed = self.resampling(ctx, n_boot, seed)
        means = self.summary_column_map()
        if keys is None:
            keys = list(means) + [k for k in self.set_statistics if k not in means]
        out: dict[str, Any] = {}
        for key in keys:
            if key in means:
                col = means[key]
                if col in a and col in b:
                    res = paired_comparison(a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float), n_boot, seed,
                                            confidence)
                    out[key] = res
                continue
            spec = self.set_statistic(key, a)
            if spec is None:
                continue
            statistic, groups = spec
            cols = [c for g in groups for c in g]
            if not all(c in b for c in cols):
                continue
            ok = (a[cols].notna().all(axis=1) & b[cols].notna().all(axis=1)).to_numpy()
            data_a = [a.loc[ok, g].to_numpy(dtype=float) for g in groups]
            data_b = [b.loc[ok, g].to_numpy(dtype=float) for g in groups]
            res = paired_bootstrap_set(statistic, data_a, data_b, n_boot, seed, confidence,
                                       resampled=getattr(statistic, "resampled", None))
            out[key] = dict(res, n_missing=int((~ok).sum()))
        return out

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
