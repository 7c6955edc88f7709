"""The import-layer contract of ``src/prunekit``: the tree is the pipeline.

Layers, top to bottom (a module imports only from its own layer, as allowed below, or from
layers beneath it)::

    8  cli, commands, __main__            strings parsed here only
    7  prunekit/__init__ (the facade)     nothing in src imports it
    6  dynamic compression recsys classic keras onnx demo testing
                                          areas that compose the layers below; never each other
    5  recover llm bench report           bench may import report (analysis writes reports);
                                          recover, llm and report import none of the four
    4  structural weights serialize       structural may use weights (hybrid pruning);
                                          serialize (save/load of pruned models) replays
                                          structural surgery, so it may use both
    3b config stats                       pruning configs validate criterion and layout names
                                          against the importance and masks registries; stats
                                          counts layouts; neither imports the other
    3  graph importance masks             importance may use masks (the weight layout decides
                                          which axis an activation statistic belongs to)
    2  handlers                           one file per layer family
    1  core helpers                       io, call, datasets, _registry, _env, _memory,
                                          _compressed ... (any acyclic order among them)

Besides the layer order the contract requires: no import cycle between modules, no
``prunekit.*`` import inside a function (only optional third-party extras are imported
lazily), and no import of the facade (``import prunekit`` / ``from prunekit import name``)
from inside ``src``. Packages that are not present are simply absent from the check.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

NEW_AREAS = ("dynamic", "compression", "recsys", "classic", "keras", "onnx", "demo", "testing")
LAYERS: dict[int, dict[str, tuple[str, ...]]] = {
    # rank: {package: same-layer packages it may import}
    8: {"cli": ("commands",), "commands": (), "__main__": ("cli",)},
    7: {"__init__": ()},
    6: {area: () for area in NEW_AREAS},
    5: {"recover": (), "llm": (), "bench": ("report",), "report": ()},
    4: {"structural": ("weights",), "weights": (), "serialize": ("structural", "weights")},
    3.5: {"config": (), "stats": ()},
    3: {"graph": (), "importance": ("masks",), "masks": ()},
    2: {"handlers": ()},
}
CORE_RANK = 1


def _rank(package: str) -> tuple[float, tuple[str, ...]]:
    for rank, table in LAYERS.items():
        if package in table:
            return rank, table[package]
    return CORE_RANK, ()  # every other top-level module is a core helper


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in sorted((SRC / "prunekit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted import name lands in (a name imported from a module -> the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported prunekit module, line, inside a function) for every import in ``module``."""
    path, is_pkg = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module if is_pkg else module.rpartition(".")[0]
    nested = {
        id(node)
        for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            names = [f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in node.names]
        else:
            continue
        for name in names:
            if name == "prunekit" or name.startswith("prunekit."):
                found.append((_resolve(name), node.lineno, id(node) in nested))
    return found


IMPORTS = {module: _imports(module) for module in MODULES}


def _where(module: str, line: int) -> str:
    return f"{MODULES[module][0].relative_to(SRC)}:{line}"


def test_no_prunekit_import_inside_functions():
    hidden = [f"{_where(m, line)} imports {t}"
              for m, found in IMPORTS.items() for t, line, inner in found if inner]
    assert not hidden, "prunekit imports belong at the top of the module:\n" + "\n".join(hidden)


def test_nothing_in_src_imports_the_facade():
    bad = [_where(m, line) for m, found in IMPORTS.items() for t, line, _ in found
           if t == "prunekit" and m not in ("prunekit", "prunekit.__main__")]
    assert not bad, "import the defining module, not the facade:\n" + "\n".join(bad)


def test_no_upward_or_sideways_imports():
    bad = []
    for module, found in IMPORTS.items():
        src_pkg = _package(module)
        src_rank, may_use = _rank(src_pkg)
        for target, line, _ in found:
            dst_pkg = _package(target)
            if dst_pkg == src_pkg:
                continue
            dst_rank, _ = _rank(dst_pkg)
            if dst_rank > src_rank or (dst_rank == src_rank and src_rank != CORE_RANK
                                       and dst_pkg not in may_use):
                bad.append(f"{_where(module, line)}: {src_pkg} (layer {src_rank}) imports "
                           f"{target} (layer {dst_rank})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Strongly connected components (size > 1) of the module import graph (Tarjan)."""
    edges = {m: {t for t, _, _ in found if t != m} for m, found in IMPORTS.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(edges)))
    try:
        for v in edges:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", ["graph", "structural", "bench"])
def test_contract_sees_the_tree(package):
    assert any(_package(m) == package for m in MODULES)  # the walker found the sources
