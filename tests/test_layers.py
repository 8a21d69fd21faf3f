"""The import graph of src/alzmri: no cycle between modules or packages, and imports point down the stages.

Imports are read from the source (module level and inside functions, as
``../shared/tools/import_cycles.py`` reads them), so a lazy import cannot hide a loop.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "alzmri"

#: The stages from the bottom up: a package may import only packages of a lower rank
#: (data -> models -> training -> evaluation -> reporting, glue and front ends above).
RANK = {
    "errors": 0, "utils": 1, "data": 2, "config": 3, "models": 4, "runs": 5, "training": 6, "evaluation": 7,
    "reporting": 8, "pipeline": 9, "explain": 10, "inference": 11, "comparison": 12, "serve": 12, "cli": 13,
    "__init__": 14, "__main__": 14,
}


def module_graph(root: Path = SRC) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every module under ``root``."""
    pkg = root.name
    mods: dict[str, Path] = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        base_parts = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = base_parts[: len(base_parts) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [f"{name}.{a.name}" if f"{name}.{a.name}" in mods else name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and t.startswith(pkg) and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _stage(module: str) -> str:
    """``alzmri.data.cache`` -> ``data``; ``alzmri`` -> ``__init__``."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return name


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, targets in edges.items():
        out.setdefault(_stage(m), set()).update(_stage(t) for t in targets if _stage(t) != _stage(m))
    return out


def test_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("def f():\n    from pkg.a.y import g\n")  # in-function import counts
    (pkg / "a" / "y.py").write_text("from . import x\n")
    (pkg / "b.py").write_text("import pkg.a.x\n")
    edges = module_graph(pkg)
    assert cycles(edges) == [["pkg.a.x", "pkg.a.y"]]
    assert edges["pkg.b"] == {"pkg.a.x"}


def test_no_import_cycle_between_modules():
    found = cycles(module_graph())
    assert not found, "module import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_cycle_between_packages():
    found = cycles(package_graph(module_graph()))
    assert not found, "package import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_stages():
    edges = module_graph()
    stages = {_stage(m) for m in edges}
    assert stages <= set(RANK), f"a package without a stage in RANK: {sorted(stages - set(RANK))}"
    upward = sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                    if _stage(t) != _stage(m) and RANK[_stage(t)] >= RANK[_stage(m)])
    assert not upward, "imports pointing up (or sideways between equal stages):\n" + "\n".join(upward)


@pytest.mark.parametrize("module", ["alzmri.inference.predict", "alzmri.inference.backends", "alzmri.inference.onnx_export", "alzmri.serve.uploads"])
def test_prediction_modules_do_not_import_lightning(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_onnx_prediction_path_does_not_import_lightning(tiny_run, small_data):
    """``predict_files`` with the default (ONNX) backend, end to end, in a fresh interpreter."""
    files = sorted(small_data.rglob("*.jpg"))[:2]
    code = f"""
import sys
from alzmri.inference.predict import predict_files
rows = predict_files({str(tiny_run)!r}, {[str(f) for f in files]!r})
assert len(rows) == 2 and all(abs(sum(r['probabilities'].values()) - 1) < 1e-4 for r in rows)
print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lightning.')))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_public_names_stay_functions_after_every_submodule_is_imported():
    """A lazily exported name must not be shadowed by a submodule of the same name (``import a.b`` sets ``a.b``)."""
    import importlib
    import pkgutil
    import types

    import alzmri

    for info in pkgutil.walk_packages(alzmri.__path__, "alzmri."):
        if not info.name.endswith(("__main__", "_worker")):
            importlib.import_module(info.name)
    for pkg in ["alzmri", *sorted(n for n in sys.modules if n.startswith("alzmri.") and hasattr(sys.modules[n], "__path__"))]:
        module = sys.modules[pkg]
        shadowed = [n for n in getattr(module, "__all__", []) if isinstance(getattr(module, n), types.ModuleType)]
        assert not shadowed, f"{pkg}.__all__ names that are modules after import: {shadowed}"
