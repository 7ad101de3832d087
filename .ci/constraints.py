"""Print constraints.txt: the installed version of every package in morgus[test]'s dependency closure (runtime,
dev stack, tests, quality gate), so `make install` (`-c constraints.txt`) installs the same set on every machine.

Run it in an environment where the tests pass: `python .ci/constraints.py > constraints.txt`. Markers are evaluated
for this machine (Linux, CPython), which is what CI runs on.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]


def project_requirements(extras: list[str] | set[str]) -> list[Requirement]:
    """The project's requirements with these extras; `morgus[dev]` inside an extra is followed, not pinned."""
    out = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        for line in PROJECT["optional-dependencies"][extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == canonicalize_name(PROJECT["name"]):
                out += project_requirements(req.extras)
            else:
                out.append(req)
    return out


def closure(roots: list[Requirement]) -> dict[str, str]:
    """name -> installed version, for the roots and everything they require (with the extras they ask for)."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{req.name} is not installed: install morgus[test] first")
        pins[key[0]] = dist.version
        for line in dist.requires or []:
            child = Requirement(line)
            # a marker is checked here, with the extras the parent was asked for ("" = none)
            if child.marker and not any(child.marker.evaluate({"extra": e}) for e in ["", *req.extras]):
                continue
            todo.append(child)
    return pins


def main() -> None:
    print(
        "# Pinned versions of morgus[test]'s dependency closure (runtime, dev stack, tests, quality gate), as installed"
    )
    print("# where the tests pass; `make install` installs with -c constraints.txt so every machine gets the same set.")
    print("# Regenerate: python .ci/constraints.py > constraints.txt")
    for name, version in sorted(closure(project_requirements(["test"])).items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
