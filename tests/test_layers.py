"""The layering of DESIGN.md, enforced: each package imports only the packages its row names,
nothing imports the ``rongguan`` shell, and the shared contracts stay light.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: DESIGN.md's "Top-level layout": the project packages each one may import (besides
#: itself). ``contracts`` is the light module everything may import; ``rongguan`` is the
#: shell on top; ``bench`` holds the benchmarks, which drive any part but not the shell.
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "hardware": {"contracts"},
    "drivers": {"hardware", "contracts"},
    "edge_agent": {"drivers", "contracts"},
    "ingest": {"contracts"},
    "rules": {"ingest", "contracts"},
    "dashboard": {"ingest", "rules", "contracts"},
    "bench": {"hardware", "drivers", "edge_agent", "ingest", "rules", "dashboard", "contracts"},
    "rongguan": {
        "hardware",
        "drivers",
        "edge_agent",
        "ingest",
        "rules",
        "dashboard",
        "contracts",
        "bench",
    },  # fmt: skip
}
#: what the light contracts must not pull in (the first six are the issue's list)
HEAVY = ["polars", "numpy", "numba", "panel", "pyarrow", "paho", "pandas", "bokeh",
         "holoviews", "asyncua", "pymodbus", "influxdb_client"]  # fmt: skip
#: the contracts modules that are a binding to one library on purpose, and what they load
HEAVY_ON_PURPOSE = {"contracts.mqtt": {"paho"}, "contracts.telemetry_arrow": {"numpy", "pyarrow"}}
CONTRACTS = sorted(
    f"contracts.{p.stem}"
    for p in (ROOT / "contracts").glob("*.py")
    if p.stem != "__init__" and f"contracts.{p.stem}" not in HEAVY_ON_PURPOSE
)


def _imported(tree: ast.AST) -> list[tuple[str, int]]:
    """Absolute module names a module imports, with line numbers (relative imports stay
    inside their own package); ``importlib.import_module("x")`` and ``__import__("x")``
    with a literal name count too."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.args[0].value, node.lineno))
    return found


def violations(root: Path, allowed: dict[str, set[str]], only: str | None = None) -> list[str]:
    """``file:line imports X`` for every import of a project package not in its row (of
    package ``only``, or of every package)."""
    out = []
    for pkg, ok in allowed.items():
        if only is not None and pkg != only:
            continue
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name, line in _imported(tree):
                top = name.split(".")[0]
                if top in allowed and top != pkg and top not in ok:
                    out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_row_names(package: str):
    assert (ROOT / package / "__init__.py").exists()
    assert violations(ROOT, ALLOWED, only=package) == []


def test_nothing_imports_the_shell():
    assert [pkg for pkg, ok in ALLOWED.items() if "rongguan" in ok] == []
    everywhere = violations(ROOT, ALLOWED)
    assert [v for v in everywhere if v.split(" imports ")[1].split(".")[0] == "rongguan"] == []


def test_nothing_shipped_imports_the_tests():
    # ``tests`` is not installed: an import of it works from a checkout's root only
    # (``rongguan bench ingest`` once failed so, run as the README says).
    found = violations(ROOT, {**ALLOWED, "tests": set()})
    assert [v for v in found if v.split(" imports ")[1].split(".")[0] == "tests"] == []


def test_the_table_has_no_cycles():
    seen: dict[str, int] = {}

    def visit(pkg: str, path: tuple[str, ...]) -> None:
        assert pkg not in path, f"cycle: {' -> '.join((*path, pkg))}"
        if seen.get(pkg):
            return
        for dep in sorted(ALLOWED[pkg]):
            visit(dep, (*path, pkg))
        seen[pkg] = 1

    for pkg in ALLOWED:
        visit(pkg, ())


def test_the_walk_finds_a_violation(tmp_path: Path):
    """The checker is not vacuous: upward, lazy and literal dynamic imports are caught."""
    for pkg in ("contracts", "ingest", "rules"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "ingest" / "bad.py").write_text(
        "from __future__ import annotations\nimport contracts.config\nfrom . import x\n\n"
        "def f():\n    from rules.engine import E\n    return E\n\n"
        "import importlib\nimportlib.import_module('rules.service')\n"
    )
    (tmp_path / "rules" / "ok.py").write_text("from ingest import store\n")
    table = {"contracts": set(), "ingest": {"contracts"}, "rules": {"ingest", "contracts"}}
    assert violations(tmp_path, table) == [
        "ingest/bad.py:6 imports rules.engine",
        "ingest/bad.py:10 imports rules.service",
    ]


def test_contracts_load_no_heavy_library():
    code = (
        "import json, sys\n"
        f"import {', '.join(CONTRACTS)}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "contracts" in loaded  # the probe did import them
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.parametrize("module", sorted(HEAVY_ON_PURPOSE))
def test_a_binding_in_contracts_loads_only_its_own_library(module: str):
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert sorted(loaded & set(HEAVY)) == sorted(HEAVY_ON_PURPOSE[module])
