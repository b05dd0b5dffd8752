"""The layer contract (ARCHITECTURE.md): imports point down only, and there is no import circle.

``lint-imports`` (import-linter, contract in ``pyproject.toml``) fails on any import, lazy
ones inside functions included, from a lower layer to a higher one; these tests run it, check
that every module of the package has its layer (a new module must be placed), and look for
import circles among modules (also inside one layer) the way grimp sees the imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cartsim"

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
try:
    import importlinter  # noqa: F401
except ImportError:  # a developer without the dev extra skips; CI (CI=true) must not
    if os.environ.get("CI"):
        raise
    pytest.skip("import-linter is in the dev extra (pip install -e '.[dev]')",
                allow_module_level=True)


def _contract() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        config = tomllib.load(fh)["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return layers


def _modules() -> set[str]:
    out = set()
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            continue  # a package's __init__ re-exports; its imports are checked as chains
        out.add(".".join(parts))
    return out


def test_lint_imports_keeps_the_layer_contract():
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, "
            "no_logo=True))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_module_has_a_layer():
    layers = [[m.strip() for m in layer.replace("|", ":").split(":")]
              for layer in _contract()["layers"]]
    declared = [m for layer in layers for m in layer]
    assert len(declared) == len(set(declared)), "a module is in two layers"
    missing = sorted(m for m in _modules()
                     if not any(m == d or m.startswith(d + ".") for d in declared))
    assert not missing, f"modules in no layer of pyproject.toml's contract: {missing}"
    assert not [d for d in declared if not ((ROOT / (d.replace(".", "/") + ".py")).is_file()
                                            or (ROOT / d.replace(".", "/")).is_dir())]


def test_no_import_circle():
    """Strongly connected components of the import graph (lazy imports included), as
    /work/shared/tools/import_cycles.py counts them: a package's ``__init__`` re-exporting
    its own children is not a circle."""
    import grimp

    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("cartsim", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    edges = {}
    for m in graph.modules:
        is_pkg = (ROOT / m.replace(".", "/") / "__init__.py").is_file()
        edges[m] = {t for t in graph.find_modules_directly_imported_by(m)
                    if t != "cartsim" and not (is_pkg and t.startswith(m + "."))}
    index, low, stack, on, circles = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
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
                circles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            strong(v)
    assert not circles, f"import circles: {circles}"
