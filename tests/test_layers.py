"""The package's layers: imports only point downwards and never go round in a circle.

The intra-package import graph is read from the source with ``ast`` (every import statement, those inside
functions included), so a cycle hidden behind a lazy import fails too. Rules (CONTRIBUTING.md):

* no import cycle between modules of ``functions``;
* ``functions.engine`` imports neither ``functions.analysis`` nor ``functions.related``, and never plots;
* ``functions.related`` imports the engine only; ``functions.analysis`` imports the engine only (and never
  trains); ``functions.notebook`` imports the engine only;
* the light engine modules import neither torch nor pandas; no module is much over 600 lines.

Run ``python tests/test_layers.py`` to print the graph's layers, its edges between layers and its cycles.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "functions"
MAX_LINES = 620  # the ~600-line rule, with a little slack
PLOTTING = ("matplotlib", "seaborn", "ipywidgets", "IPython")
TRAINING_NAMES = {"fit", "fit_steps", "pretrain", "Study", "run_protocols", "make_executor"}
TRAINING_MODULES = ("functions.engine.study", "functions.engine.distributed", "functions.engine.pool",
                    "functions.engine.tasks", "functions.engine.pretraining", "functions.engine.protocol_grid")
LIGHT = ("functions.engine.config", "functions.engine.conditions", "functions.engine.datasets",
         "functions.engine.architectures", "functions.engine.errors", "functions.engine.coerce",
         "functions.engine.schema", "functions.engine.store", "functions.engine.protocols")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name → file."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) ``from ... import`` refers to."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, set[str]]]:
    """(imported module, names taken from it) of every import statement in the file, top level or not."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, set()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, set()) if sub in known else (base, {alias.name}))
    return found


def graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, set[str]]]]]:
    """(intra-package edges: module → modules it imports, every import of every module)."""
    known = modules()
    every = {name: imports(name, path, known) for name, path in known.items()}
    edges = {name: {target for target, _ in found if target in known and target != name}
             for name, found in every.items()}
    return edges, every


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import cycles."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "functions"


def forbidden(edges: dict[str, set[str]]) -> list[str]:
    """Edges that point up or sideways between layers."""
    allowed = {"engine": {"engine"}, "analysis": {"analysis", "engine"}, "related": {"related", "engine"},
               "notebook": {"engine"}, "functions": {"engine"}}
    return [f"{a} -> {b}" for a, targets in sorted(edges.items()) for b in sorted(targets)
            if layer(b) not in allowed[layer(a)]]


# ----------------------------------------------------------------------------- tests
def test_every_layer_exists():
    names = set(modules())
    for package in ("functions", "functions.engine", "functions.analysis", "functions.related"):
        assert package in names, package


def test_no_import_cycles():
    edges, _ = graph()
    assert cycles(edges) == []


def test_imports_only_point_downwards():
    edges, _ = graph()
    assert forbidden(edges) == []


def test_engine_never_plots_and_analysis_never_trains():
    _, every = graph()
    plotting = [f"{m} imports {t}" for m, found in every.items() if layer(m) == "engine"
                for t, _ in found if t.split(".")[0] in PLOTTING]
    assert plotting == []
    training = [f"{m} imports {sorted(names & TRAINING_NAMES) or t}" for m, found in every.items()
                if layer(m) == "analysis" for t, names in found
                if names & TRAINING_NAMES or t in TRAINING_MODULES or t.startswith("torch.optim")]
    assert training == []


def test_light_modules_import_neither_torch_nor_pandas():
    code = (f"import sys; import {', '.join(LIGHT)}; "
            "bad = [m for m in ('torch', 'pandas') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_is_much_over_600_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


if __name__ == "__main__":
    edges, _ = graph()
    by_layer = defaultdict(list)
    for name in edges:
        by_layer[layer(name)].append(name)
    for name, members in sorted(by_layer.items()):
        print(f"{name}: {len(members)} modules")
    crossing = defaultdict(int)
    for a, targets in edges.items():
        for b in targets:
            crossing[(layer(a), layer(b))] += 1
    print("imports between layers:", ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(crossing.items())))
    print(f"{sum(map(len, edges.values()))} intra-package import edges (function-level imports included)")
    print("cycles:", cycles(edges) or "none")
    print("upward or sideways imports:", forbidden(edges) or "none")
    sys.exit(bool(cycles(edges) or forbidden(edges)))
