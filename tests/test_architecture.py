"""The package's shape, checked: imports run one way between the layers, no circles between
modules, no private name imported across modules (ARCHITECTURE.md, README's Layout)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fhirtis"

#: A layer may import itself and the layers with a lower rank, never a higher one.
RANKS = {
    "clinical": 0,
    "fhir": 1,
    "io": 2,
    "settings": 3,
    "pipeline": 4,
    "registry": 5,
    "api": 5,
    "cli": 6,
    "__main__": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports() -> dict[str, set[tuple[str, str | None, bool]]]:
    """module → {(imported module, imported name or None, at top level)}."""
    found: dict[str, set[tuple[str, str | None, bool]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        type_checking = {
            id(child)
            for node in tree.body
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in type_checking:
                continue
            at_top = id(node) in top_level
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] != "fhirtis":
                    continue
                for alias in node.names:
                    found[module].add((node.module, alias.name, at_top))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "fhirtis":
                        found[module].add((alias.name, None, at_top))
    return found


IMPORTS = _imports()


def test_there_are_modules_to_check() -> None:
    assert len(IMPORTS) > 30


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_imports_only_run_downward(module: str) -> None:
    layer = _layer(module)
    if layer is None:  # fhirtis/__init__.py: the lazy public API
        return
    upward = [
        target
        for target, _, _ in IMPORTS[module]
        if (t := _layer(target)) is not None and t != layer and RANKS[t] > RANKS[layer]
    ]
    assert not upward, f"{module} ({layer}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_no_private_name_crosses_modules(module: str) -> None:
    package = module.rsplit(".", 1)[0] if module.count(".") > 1 else module
    crossing = []
    for target, name, _ in IMPORTS[module]:
        target_package = target.rsplit(".", 1)[0]
        private_module = any(part.startswith("_") for part in target.split(".")[1:])
        if private_module and not (
            module.startswith(target_package + ".") or package == target_package
        ):
            crossing.append(target)
        sibling = target == package  # `from fhirtis.io import _urls` inside fhirtis.io
        if name is not None and name.startswith("_") and name != "__version__" and not sibling:
            crossing.append(f"{target}.{name}")
    assert not crossing, f"{module} imports private names of other modules: {crossing}"


def test_no_import_circles_between_modules() -> None:
    graph = {m: {t for t, _, top in IMPORTS[m] if top and t in IMPORTS} for m in IMPORTS}
    for targets in graph.values():  # the lazy public API in fhirtis/__init__ is not a circle
        targets.discard("fhirtis")
    seen: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        seen.add(node)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack and not nxt.startswith(node + ".") and not node.startswith(nxt):
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError(f"import circle: {' -> '.join(cycle)}")
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        on_stack.discard(node)

    for module in sorted(graph):
        if module not in seen:
            visit(module)


def test_the_product_has_no_test_hooks() -> None:
    """No switch that only tests use (an environment variable that kills the process, say) ships
    in the package: tests reach such moments from outside (tests/registry/kill_after_writes.py)."""
    hooks = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "FHIRTIS_TEST_" in path.read_text()
    ]
    assert hooks == []
