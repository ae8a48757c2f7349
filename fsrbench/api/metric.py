"""Contract of metrics: :class:`Metric` and the :class:`CellContext` of the cell being scored."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np


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
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...]] = ()  # per-image columns; default (name,)
    ideal: ClassVar[float | None] = None  # value of a perfect reconstruction (hr-oracle check)
    description: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    def __init__(self, protocol: Any = None, **options: Any) -> None:
        from fsrbench.protocols import get_protocol

        self.protocol = get_protocol(protocol) if not hasattr(protocol, "metric") else protocol
        self.options = dict(options)

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return cls.columns or (cls.name,)

    def setup(self, device: Any = "cpu") -> None:
        """Load models once per process. Raise :class:`Unavailable` if the metric cannot run."""

    def per_image(self, sr: np.ndarray, hr: np.ndarray, ctx: CellContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def summarize(self, table: Any, ctx: CellContext) -> dict[str, Any]:
        """Dataset-level summary from the cell's per-image table. Default: mean with a 95% CI."""
        from fsrbench.stats import mean_ci

        col = self.column_names()[0]
        return {self.name: mean_ci(table[col].to_numpy(dtype=float))}

    # convenience for the Python API: tensors in [0,1] -> per-image values of the primary column
    def __call__(self, sr: Any, hr: Any, scale: int | None = None) -> np.ndarray:
        from fsrbench.imageio import tensor_to_uint8

        ctx = CellContext(dataset="api", scale=scale or 0, method="api", protocol=self.protocol)
        if scale is None:
            self.protocol.crop_border(None)  # raises if the protocol's border crop depends on the scale
        out = self.per_image(tensor_to_uint8(sr), tensor_to_uint8(hr), ctx)
        return out[self.column_names()[0]]
