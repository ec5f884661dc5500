"""The package's import graph: no cycle, no arrow from a lower stage to a higher one, click only
in commands/. Built from every `import` statement of every module (those inside functions too),
so a lazy import cannot hide a loop."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latbench"

# The stages in the order data flows (DESIGN.md, "Third wave"); a module may import its own
# stage and any stage before it, never one after it. The package's face sits on top.
STAGES = [
    "",
    "nets",
    "build",
    "devices",
    "profiling",
    "predictors",
    "calibration",
    "proxy",
    "search",
    "tuning",
    "api",
    "commands",
    "latbench",
]
FOUNDATION = {"_version", "errors", "fileio", "records", "plotting", "procs", "quiet"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import statement, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return out


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for mod, path in modules.items():
        for name, line in _imports(path):
            while name and name not in modules:  # `from pkg import func` -> pkg (a module: itself)
                name = name.rpartition(".")[0]
            if name and name != mod:
                graph[mod].setdefault(name, line)
    return graph


def _stage(mod: str) -> str:
    parts = mod.split(".")
    if len(parts) == 1:
        return "latbench"
    return "" if parts[1] in FOUNDATION else parts[1]


def test_every_module_belongs_to_a_known_stage():
    unknown = sorted(m for m in _modules() if _stage(m) not in STAGES)
    assert not unknown, f"modules outside the stage table: {unknown} (add the stage to STAGES)"


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_stage_imports_a_later_stage():
    upward = []
    for mod, targets in _graph().items():
        for target, line in targets.items():
            if STAGES.index(_stage(target)) > STAGES.index(_stage(mod)):
                upward.append(f"{mod}:{line} -> {target}")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_click_is_imported_only_by_the_commands():
    offenders = [
        f"{mod}:{line}"
        for mod, path in _modules().items()
        if _stage(mod) != "commands"
        for name, line in _imports(path)
        if name.split(".")[0] == "click"
    ]
    assert not offenders, f"click outside latbench/commands/: {offenders}"


def test_every_stage_folder_says_what_it_takes_and_gives():
    folders = sorted(p for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py")))
    assert {p.name for p in folders} >= set(STAGES[1:10]) - {"api"}
    for folder in folders:
        assert (folder / "__init__.py").exists(), f"{folder.name}/ has no __init__.py"
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.split()) >= 8, f"{folder.name}/__init__.py needs a docstring"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The graph builder itself: a planted loop and an upward import are found."""
    pkg = tmp_path / "latbench"
    (pkg / "nets").mkdir(parents=True)
    (pkg / "search").mkdir()
    for p in (pkg, pkg / "nets", pkg / "search"):
        (p / "__init__.py").write_text('"""x"""\n')
    (pkg / "nets" / "a.py").write_text("def f():\n    from latbench.search.b import g\n")
    (pkg / "search" / "b.py").write_text("from ..nets import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_import_graph_has_no_cycle()
    with pytest.raises(AssertionError, match=r"latbench.nets.a:2 -> latbench.search.b"):
        test_no_stage_imports_a_later_stage()


def test_the_tests_mirror_the_stage_folders():
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders <= stages, f"test folders without a stage: {sorted(folders - stages)}"


def test_every_test_folder_is_collected(pytestconfig):
    """A test folder whose name pytest skips by default (tests/build/ matched "build") would
    drop its tests from every run without a word: none of them may match norecursedirs."""
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parent
    skip = pytestconfig.getini("norecursedirs")
    folders = {p.parent for p in root.rglob("test_*.py")}
    assert root / "build" in folders
    for folder in folders:
        for part in folder.relative_to(root).parts:
            assert not any(fnmatch(part, pat) for pat in skip), (folder, part)
