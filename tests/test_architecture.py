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


# -- the rooms: packages without cycles, small modules, a small bench root, __init__ files that only re-export ----

MAX_MODULE_LINES = 450
MAX_BENCH_ROOT_MODULES = 12


def package_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def package_graph() -> dict[str, set[str]]:
    """Imports between packages (a module counts for the package that holds it); the CLI entry is left out."""
    modules = all_modules()
    edges: dict[str, set[str]] = {}
    for module, deps in graph().items():
        if module in ENTRY:
            continue
        for dep in deps - ENTRY:
            a, b = package_of(module, modules), package_of(dep, modules)
            if a != b:
                edges.setdefault(a, set()).add(b)
    return edges


def test_no_package_level_cycle():
    cycle = find_cycle(package_graph())
    assert cycle is None, "package cycle: " + " -> ".join(cycle)


def test_no_module_in_core_over_the_line_limit():
    long = {name: n for name, path in all_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (one job per file): {long}"


def test_bench_root_is_small_and_its_rooms_are_stages():
    root = sorted(p.name for p in (CORE / "bench").glob("*.py"))
    assert len(root) <= MAX_BENCH_ROOT_MODULES, f"core/bench/ root has {len(root)} modules: {root}"
    for stage in ("run", "conditions", "sweep"):
        assert (CORE / "bench" / stage / "__init__.py").is_file(), f"core/bench/{stage}/ is missing"


def test_no_python_file_at_the_repo_root_but_app():
    assert sorted(p.name for p in REPO_ROOT.glob("*.py")) == ["app.py"]


def test_package_init_files_only_re_export():
    """An __init__ holds a docstring, imports and __all__: logic there makes every import of the package run it
    (and a module of the package importing its own package closes a cycle)."""
    logic = []
    for path in list(CORE.rglob("__init__.py")) + list((REPO_ROOT / "ui").rglob("__init__.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            dunder_all = isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["__all__"]
            if not (doc or dunder_all or isinstance(node, (ast.Import, ast.ImportFrom))):
                logic.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {type(node).__name__}")
    assert not logic, logic


def test_the_room_rules_can_fail(tmp_path):
    # the package graph sees a cycle between two packages through their modules
    assert find_cycle({"p": {"q"}, "q": {"p"}}) == ["p", "q", "p"]
    modules = {"core.a": Path("core/a/__init__.py"), "core.a.x": Path("core/a/x.py")}
    assert package_of("core.a.x", modules) == "core.a" and package_of("core.a", modules) == "core.a"
