"""fsrbench's modules form layers; no module imports a module of a higher layer, and there is no import cycle.

Run: ``.venv/bin/python -m pytest tests/test_layering.py``.  The check is static: every ``import`` and
``from ... import`` of every module of ``fsrbench/`` (AST), including imports inside functions, resolved to
the fsrbench module it names.  The layers are described in docs/architecture.md ("Layers").
"""
from __future__ import annotations

import ast
from pathlib import Path

import fsrbench

PACKAGE = Path(fsrbench.__file__).resolve().parent

#: bottom to top; a module may import modules of its own layer or of layers below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("fsrbench.errors", "fsrbench._version")),
    ("base", ("fsrbench.registry", "fsrbench.protocols", "fsrbench.imageio", "fsrbench.stats", "fsrbench.cache",
              "fsrbench.results", "fsrbench.recipes", "fsrbench.weight_recipes", "fsrbench.weights",
              "fsrbench.dist")),
    ("contracts", ("fsrbench.api",)),
    ("components", ("fsrbench.analysis", "fsrbench.data", "fsrbench.metrics")),
    ("engines", ("fsrbench.eval", "fsrbench.train")),
    ("report", ("fsrbench.report", "fsrbench.leaderboard", "fsrbench.reported")),
    ("interface", ("fsrbench.commands", "fsrbench.cli", "fsrbench.__main__", "fsrbench")),
]

#: (importer, imported) -> why the upward import is still there; every entry must be in use
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """The fsrbench modules ``name`` imports (anywhere in the file), with line numbers."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule pkg.sub
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "fsrbench" or t.startswith("fsrbench."):
                while t not in modules and "." in t:  # ``import fsrbench.x.y`` of a name inside a module
                    t = t.rpartition(".")[0]
                out.append((t, node.lineno))
    return out


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"module {name} is in no layer: add it to LAYERS in {__file__}"
    return best


def graph() -> dict[str, list[tuple[str, int]]]:
    modules = all_modules()
    return {n: imports_of(n, p, modules) for n, p in modules.items()}


def test_every_module_is_in_a_layer():
    for name in all_modules():
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    upward, used = [], set()
    for src, edges in graph().items():
        for dst, line in edges:
            if layer_of(dst) > layer_of(src):
                if (src, dst) in ALLOWED_UPWARD:
                    used.add((src, dst))
                    continue
                upward.append(f"{src}:{line} imports {dst} ({LAYERS[layer_of(src)][0]} -> {LAYERS[layer_of(dst)][0]})")
    assert upward == [], "upward imports:\n" + "\n".join(upward)
    assert used == set(ALLOWED_UPWARD), f"stale ALLOWED_UPWARD entries: {set(ALLOWED_UPWARD) - used}"


def test_no_import_cycles():
    g = {n: sorted({d for d, _ in e if d != n}) for n, e in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
