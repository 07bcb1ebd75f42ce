"""The library under defs/ knows nothing of Dagster: importing all of it loads no dagster."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pdpipeline

# The Dagster layer: the code location and the modules that serve or run it.
DAGSTER_LAYER = ("pdpipeline.defs", "pdpipeline.definitions", "pdpipeline.ui")


def library_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(pdpipeline.__path__, "pdpipeline.")]
    return sorted(
        n for n in names if not n.startswith(DAGSTER_LAYER) and n != "pdpipeline.__main__"
    )


def test_the_library_imports_no_dagster():
    modules = library_modules()
    assert "pdpipeline.runner" in modules and "pdpipeline.search" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
