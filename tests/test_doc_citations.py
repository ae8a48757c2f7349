"""Every specification the package and its docs cite is in the repository (docs/spec/, docs/methods/): no
citation of design notes that live outside it (../shared/docs, CONVENTIONS.md, METHODS.md, AU.md, STACK.md)."""
from __future__ import annotations

import re
from pathlib import Path

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
OUTSIDE = re.compile(r"shared/docs|\b(?:CONVENTIONS|METHODS|AU|STACK|ARCHITECTURE|EXAMPLES)\.md")
CITED = re.compile(r"docs/(?:spec|methods)/[\w\-.<>]+\.md")


def _files() -> list[Path]:
    return sorted((REPO / "fsrbench").rglob("*.py")) + sorted((REPO / "docs").glob("*.md")) + sorted(
        (REPO / "docs" / "spec").glob("*.md"))


def test_no_citation_of_design_notes_outside_the_repository():
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in _files()
           for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert bad == [], "\n".join(bad)


def test_cited_spec_pages_exist():
    missing = sorted({m for p in _files() for m in CITED.findall(p.read_text())
                      if "<" not in m and not (REPO / m).is_file()})
    assert missing == []
    assert (REPO / "docs" / "spec" / "README.md").is_file()
