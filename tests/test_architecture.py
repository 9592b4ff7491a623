"""The tree shows the pipeline: stage packages, a small shared root, imports that run one way, no cycle.

catalog <- engines <- bench and quality <- decision <- cli (and pages), with the store and the shared
root modules (config, errors, stats, jobs, output, metrics) below all of them.
"""
from __future__ import annotations

import ast
from pathlib import Path

from core.config import REPO_ROOT

CORE = REPO_ROOT / "core"
SHARED = 0
LAYERS = {"store": SHARED, "catalog": 1, "engines": 2, "bench": 3, "quality": 3, "decision": 4, "cli": 5}
ENTRY = {"core", "core.__main__"}   # the package and `python -m core` start the CLI


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(root: Path = CORE) -> dict[str, Path]:
    return {module_name(p): p for p in root.rglob("*.py")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every core module `name` imports, wherever the import stands (lazy imports inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from core.x import y`: y is a module when core/x/y.py exists, else a name in core.x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:   # `import core.x.y` where only core.x is ours, etc.
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], SHARED) if len(parts) > 1 and (CORE / parts[1]).is_dir() else SHARED


def test_no_import_cycle_in_core():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    # the check above must be able to fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_run_one_way():
    wrong = []
    for module, deps in graph().items():
        if module in ENTRY:
            continue
        for dep in deps:
            if dep in ENTRY:
                wrong.append(f"{module} imports the CLI entry {dep}")
            elif layer(dep) > layer(module) or (layer(dep) == layer(module) != SHARED
                                                and dep.split(".")[1] != module.split(".")[1]):
                wrong.append(f"{module} (layer {layer(module)}) imports {dep} (layer {layer(dep)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_stage_packages_and_a_small_root():
    for package in LAYERS:
        assert (CORE / package / "__init__.py").is_file(), f"core/{package}/ is missing"
    root_modules = sorted(p.name for p in CORE.glob("*.py"))
    assert len(root_modules) <= 8, f"core/ root has {len(root_modules)} modules: {root_modules}"


def test_core_never_imports_streamlit():
    offenders = [name for name, path in all_modules().items()
                 if "streamlit" in {n.split(".")[0] for n in _plain_imports(path)}]
    assert not offenders, offenders


def _plain_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_tests_mirror_the_source_tree():
    tests = REPO_ROOT / "tests"
    for package in LAYERS:
        if package in ("store",):
            continue
        assert any((tests / package).glob("test_*.py")), f"tests/{package}/ has no tests"
