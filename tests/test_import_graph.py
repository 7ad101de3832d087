"""The package's import graph (issue 13): no cycle among module-level imports, and no base module importing the
modules built on it (sandbox backends are chosen through a registry). Read from the source with ast: no import runs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "morgus"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The morgus modules `path` imports when it is imported: top-level statements only (an import inside a function
    runs later, on purpose, and `if TYPE_CHECKING:` never runs)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.Import, ast.ImportFrom, ast.With, ast.Try)) else ():
            if isinstance(sub, ast.Import):
                targets = [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - sub.level + 1] + ([base] if base else [])
                    )
                targets = [f"{base}.{a.name}" for a in sub.names] + [base]
            else:
                continue
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): module_level_imports(f, modules) for f in files}


def test_no_import_cycle():
    g = graph()
    # a package's __init__ runs before any of its modules: importing the package's own modules from it is how a
    # facade re-exports them, and a module importing its package's __init__ is an edge back into it only when
    # the __init__ imports that module, which the search below reports like any other cycle
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if n.startswith(m + ".") and m in g:  # a package importing its own submodule (facade)
                continue
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert cycles == [], cycles


def test_base_modules_do_not_import_what_is_built_on_them():
    """sandbox/base.py once imported its backends to pick one; a registry does that now: a base module must not
    import a sibling that imports it."""
    g = graph()
    assert any(m.endswith(".base") for m in g)
    for m, deps in g.items():
        if m.endswith(".base"):
            package = m.rpartition(".")[0]
            built_on_it = {d for d in deps if d.startswith(package + ".") and m in g.get(d, ())}
            assert built_on_it == set(), f"{m} imports {built_on_it}, which import it"
