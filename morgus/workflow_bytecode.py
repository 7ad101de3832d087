"""Bytecode for the modules Temporal's workflow sandbox imports afresh for every task.

The sandbox gives each workflow run its own copy of the workflow's module (and its parent packages), so no state is
shared between runs; everything else the workflow uses is passed through. Python reads those modules' cached
bytecode if there is any; with PYTHONDONTWRITEBYTECODE set (as in some dev environments) there never is, and each
task's first workflow task compiled task.py and its packages from source again: ~12 ms of the ~28 ms a worker took
for it on the 2-core bench machine (docs/benchmarks.md, "Pickup"). Written once when the worker starts, where the
package's directory is writable; a read-only install was compiled by pip when it was installed.
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
from collections.abc import Iterable

import structlog


def sandboxed_modules(workflow_classes: Iterable[type]) -> list[str]:
    """The modules the sandbox re-imports for a run: each workflow class's module and its parent packages."""
    names: list[str] = []
    for cls in workflow_classes:
        parts = cls.__module__.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in names:
                names.append(name)
    return names


def cache_workflow_bytecode(workflow_classes: Iterable[type]) -> list[str]:
    """Write the cached bytecode of the sandbox's modules where Python looks for it; returns the files written.
    Nothing to do when Python writes bytecode itself (it did on the worker's own first import)."""
    if not sys.dont_write_bytecode:
        return []
    written = []
    for name in sandboxed_modules(workflow_classes):
        source = getattr(sys.modules.get(name), "__file__", None)
        if not source or not source.endswith(".py"):
            continue
        try:
            cached = importlib.util.cache_from_source(source)
            # timestamp-checked like Python's own: an edited source is compiled again, never run stale
            py_compile.compile(
                source, cfile=cached, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
            )
        except (OSError, NotImplementedError, py_compile.PyCompileError) as e:
            structlog.get_logger().info("workflow bytecode not cached; each task compiles it", module=name, why=str(e))
            continue
        written.append(cached)
    return written
