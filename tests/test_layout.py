"""The layout keeps its shape: no import cycle between modules, dependencies that point down."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vqvae", "pages")


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import a module can run, function-level ones included; `if TYPE_CHECKING:` blocks left out."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `name` imports (a name imported from a package counts as its submodule)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
            continue
        base = package[: len(package) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            found.add(submodule if submodule in modules else target)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or several."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_graph_sees_the_imports_it_must():
    graph = import_graph()
    assert "vqvae.prior.network" in graph["vqvae.prior.sampler"] or "vqvae.prior.gate" in graph["vqvae.prior.sampler"]
    assert {"vqvae.train", "vqvae.evaluate"} <= graph["vqvae.jobs"]
    assert "vqvae.app.run_child" in graph["vqvae.app.runs"]
    assert "vqvae.jobs" in graph["vqvae.app.run_child"]  # an import inside a function counts


def test_a_cycle_is_found_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_the_library_never_imports_the_app_pages_or_scripts():
    for name, imported in import_graph().items():
        if name.startswith("vqvae"):
            assert not {m for m in imported if m.startswith("pages")}, name
            text = module_files()[name].read_text()
            assert "scripts/" not in text and "import scripts" not in text, name


def test_the_core_library_never_imports_the_app_package():
    """vqvae/app/ serves the app; the model, training and checkpoint code stand without it."""
    for name, imported in import_graph().items():
        if name.startswith("vqvae") and not name.startswith(("vqvae.app", "vqvae.bench")):
            assert not {m for m in imported if m.startswith("vqvae.app")}, name
