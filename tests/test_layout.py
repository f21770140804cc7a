"""scripts/ is grouped by concern, and neither its modules nor its packages import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = SCRIPTS) -> dict[str, set[str]]:
    """Every scripts module -> the scripts modules it imports (at module level or inside functions)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name and not modules[t].name == "__init__.py"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def package(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 else "scripts"  # top-level modules (variants, results) are the base

    out: dict[str, set[str]] = {}
    for src, dsts in graph.items():
        out.setdefault(package(src), set()).update(package(d) for d in dsts if package(d) != package(src))
    return out


def test_no_import_circle_between_modules():
    assert find_cycle(import_graph()) is None


def test_no_import_circle_between_packages():
    assert find_cycle(package_graph(import_graph())) is None


def test_cycle_finder_sees_a_circle(tmp_path):
    pkg = tmp_path / "scripts" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from scripts.demo.b import rows\n")
    (pkg / "b.py").write_text("def f():\n    from scripts.demo import a\n")
    cycle = find_cycle(import_graph(tmp_path / "scripts"))
    assert cycle == ["scripts.demo.a", "scripts.demo.b", "scripts.demo.a"]


def test_scripts_grouped_by_concern():
    flat = sorted(p.name for p in SCRIPTS.glob("*.py") if p.name != "__init__.py")
    # The shared base (what the project builds, the peers it is measured against, where results go);
    # everything else lives in a package.
    assert flat == ["peers.py", "results.py", "variants.py"]
    assert {p.name for p in SCRIPTS.iterdir() if (p / "__init__.py").exists()} == {
        "model", "infra", "traffic", "images", "bench", "studies", "reports", "advisor", "deploy"}
