"""Contract of datasets: :class:`Dataset` (ordered ids, ``load(id)``) and :class:`Sample`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class Sample:
    id: str  # stable and unique within the dataset (used as the row key of every table)
    hr: np.ndarray  # uint8 [hr_size, hr_size, 3] RGB
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"emotion": "happiness", "identity": ...}


class Dataset:
    """Base class of datasets: an ordered list of ids and a loader for one id.

    ``skipped`` lists (file, reason) for inputs found while listing that cannot be used; ``load`` raises
    :class:`DataError` for an input that turns out to be unreadable, and the harness records it.
    """

    kind: ClassVar[str] = "datasets"  # the registry a plugin subclass belongs to (--plugin infers it)
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    hr_size: int = 128

    def __init__(self, arg: str | None = None, **options: Any) -> None:
        self.arg = arg
        self.options = dict(options)
        self.skipped: list[tuple[str, str]] = []

    @property
    def display_name(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"

    def ids(self) -> list[str]:
        raise NotImplementedError

    def load(self, sample_id: str) -> Sample:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data (stored in run.json): ids hash etc."""
        import hashlib

        h = hashlib.sha256("\n".join(self.ids()).encode()).hexdigest()
        return {"name": self.display_name, "n": len(self.ids()), "ids_sha256": h}

    def __len__(self) -> int:
        return len(self.ids())
