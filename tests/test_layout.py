"""The repository's layout rules, checked on the source: library code in the package, no `sys.path` edits, no import
cycles among the package's modules, no script named like a library it (or the package) imports."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "modeling_depth_anything"


def _python_files() -> list[Path]:
    skip = {".venv", ".git", "runs", "outputs", "build"}
    return [path for path in ROOT.rglob("*.py") if not skip & set(path.relative_to(ROOT).parts)]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _module_level_imports(path: Path) -> set[str]:
    """Package modules imported at module level (imports inside functions are deferred and cannot form a cycle
    at import time)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {module for module in found if module == PACKAGE or module.startswith(PACKAGE + ".")}


def test_no_sys_path_edits():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if "sys.path" in path.read_text(encoding="utf-8") and path != Path(__file__).resolve()
    ]
    assert not offenders, f"sys.path edited in {offenders}: import the installed package instead"


def test_no_import_cycles_in_the_package():
    modules = {_module_name(path): path for path in (ROOT / PACKAGE).rglob("*.py")}
    graph = {
        name: {m for m in _module_level_imports(path) if m in modules and m != name} for name, path in modules.items()
    }
    # A package's __init__ and its own submodules reaching each other is how Python packages work; any other
    # cycle is reported.
    visiting, done, cycles = set(), set(), []

    def visit(node: str, stack: list[str]) -> None:
        visiting.add(node)
        for target in graph[node]:
            if target in visiting:
                cycle = stack[stack.index(target) :] + [target]
                if not all(
                    a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(cycle, cycle[1:], strict=False)
                ):
                    cycles.append(" -> ".join(cycle))
            elif target not in done:
                visit(target, [*stack, target])
        visiting.discard(node)
        done.add(node)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("folder", ["train", "eval", "."])
def test_no_script_shadows_an_installed_library(folder):
    """`python eval/x.py` puts eval/ first on sys.path: a script named like a library would shadow it."""
    shadowing = []
    for path in sorted((ROOT / folder).glob("*.py")):
        if path.stem in ("__init__", "conftest", "app", "setup"):
            continue
        spec = importlib.util.find_spec(path.stem)
        if spec is not None and spec.origin and Path(spec.origin).resolve() != path.resolve():
            shadowing.append(f"{path.relative_to(ROOT)} shadows {spec.origin}")
    assert not shadowing, shadowing


def test_library_code_is_not_in_script_folders():
    """train/ and eval/ hold entry scripts: nothing in the package or the tests imports them as modules."""
    script_modules = {path.stem for folder in ("train", "eval") for path in (ROOT / folder).glob("*.py")}
    offenders = []
    for path in [*(ROOT / PACKAGE).rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: import {n}" for n in names if n.split(".")[0] in script_modules]
    assert not offenders, offenders
