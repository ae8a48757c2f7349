"""What may be compared on a board: partial cells, weights trained on test images, weights that are not the
papers' (reference or shorter-than-recipe training), and the order of the rows.

Read from each cell of ``metrics.json``: ``n_images`` / ``n_split`` (the images the split holds, recorded by
the runner) and ``weights_provenance`` (:func:`fsrbench.weights.weights_provenance`); results stored before
these fields existed fall back to the weight card alone (``weights``: shipped reference weights, a split that
holds test images) and are never marked partial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fsrbench.weights import weights_provenance

#: the marks of the boards (markdown / plain text)
PARTIAL_MARK = "*"
TEST_SPLIT_MARK = "§"


@dataclass
class CellFlags:
    """The comparability of one cell: ``n_split`` (None: unknown), the weights' provenance."""

    n_images: int = 0
    n_split: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return self.n_split is not None and self.n_images < self.n_split

    @property
    def test_split(self) -> bool:
        return bool(self.provenance.get("test_split"))

    @property
    def weights_comparable(self) -> bool:
        return bool(self.provenance.get("comparable", True))

    def not_comparable_reasons(self) -> list[str]:
        """Short reasons why this cell cannot stand beside a paper's number (empty: it can)."""
        out = []
        if self.partial:
            out.append(f"partial split ({self.n_images} of {self.n_split} images)")
        why = str(self.provenance.get("why") or "")
        if self.test_split:
            out.append("weights trained on test images")
        if "reference weights" in why:
            out.append("fsrbench reference weights, not the paper's")
        if "paper recipe" in why:
            out.append("weights trained shorter than the paper recipe")
        if not self.weights_comparable and not out:
            out.append(why or "weights not comparable")
        return out


def cell_flags(cell: dict[str, Any]) -> CellFlags:
    n_split = cell.get("n_split")
    prov = cell.get("weights_provenance")
    if not isinstance(prov, dict):
        prov = weights_provenance(cell.get("weights") if isinstance(cell.get("weights"), dict) else None)
    return CellFlags(n_images=int(cell.get("n_images", 0) or 0),
                     n_split=int(n_split) if isinstance(n_split, (int, float)) and not isinstance(n_split, bool) else None,
                     provenance=dict(prov))


def order_methods(methods: list[str], ranks: dict[str, float], last: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Rows by mean rank (best first; ties by name); methods without a rank after them by name, ``last``
    (reference rows such as hr-oracle) at the end."""
    def key(m: str) -> tuple[int, float, str]:
        r = ranks.get(m)
        group = 2 if m in last else (0 if r is not None and math.isfinite(r) else 1)
        return group, (r if group == 0 and r is not None else 0.0), m

    return sorted(methods, key=key)


def method_label(method: str, flags: CellFlags | None) -> str:
    return f"{method} {TEST_SPLIT_MARK}" if flags is not None and flags.test_split else method


def n_text(flags: CellFlags | None, n: Any) -> str:
    if flags is not None and flags.partial:
        return f"{flags.n_images} of {flags.n_split}{PARTIAL_MARK}"
    return str(n)


def board_warnings(methods: list[str], flags: dict[str, CellFlags]) -> list[str]:
    """Markdown lines shown under a board's heading and after its tables (empty when nothing is flagged)."""
    lines = []
    partial = [m for m in methods if m in flags and flags[m].partial]
    if partial:
        sizes = sorted({(flags[m].n_images, flags[m].n_split) for m in partial})
        what = "; ".join(f"{a} of the {b:,} images" for a, b in sizes)
        lines.append(f"**Warning: partial evaluation** — {', '.join(partial)} evaluated on {what} of this split "
                     f"(`--limit`, or files missing from the data): these numbers are not comparable with "
                     f"full-split results ({PARTIAL_MARK} in the N column).")
    on_test = [m for m in methods if m in flags and flags[m].test_split]
    if on_test:
        lines.append(f"**Warning: weights trained on test images** — {', '.join(on_test)} ({TEST_SPLIT_MARK}): "
                     + "; ".join(f"{m}: {flags[m].provenance.get('why')}" for m in on_test)
                     + ". These cells are not benchmark results.")
    return lines


def weights_notes(methods: list[str], flags: dict[str, CellFlags]) -> list[str]:
    """One line per method whose weights are not comparable with the papers' numbers (other than test splits)."""
    out = []
    for m in methods:
        f = flags.get(m)
        if f is None or f.weights_comparable or f.test_split:
            continue
        out.append(f"{m}: {f.provenance.get('why')}")
    return out


__all__ = ["CellFlags", "PARTIAL_MARK", "TEST_SPLIT_MARK", "board_warnings", "cell_flags", "method_label", "n_text",
           "order_methods", "weights_notes"]
