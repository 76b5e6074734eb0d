"""The floors point one way: a package imports only packages below it, never one above.

core < store, connectors < rules < workers, webhooks < the app shell (aftersale.*).
Packages on the same floor do not import each other either. Imports inside
functions are counted like the rest: they are still dependencies. Read with
``ast``, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: folder in the repository -> (package name, floor)
FLOORS = {
    "core": ("core", 0),
    "store": ("store", 1),
    "connectors": ("connectors", 1),
    "rules": ("rules", 2),
    "workers": ("workers", 3),
    "webhooks": ("webhooks", 3),
    "aftersale": ("app", 4),
}
#: aftersale.<name> -> the folder it is mapped from (setup.cfg package_dir)
MAPPED = {"core", "store", "connectors", "rules", "workers", "webhooks"}
OUR_TOP_LEVEL = set(FLOORS)


def package_of(module: str) -> str | None:
    """The floor package an absolute module name belongs to, or None when not ours."""
    parts = module.split(".")
    if parts[0] != "aftersale":
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return "root"  # the namespace itself: only __version__ lives there
    return parts[1] if parts[1] in MAPPED else "aftersale"


def imports_of(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "aftersale":
                for alias in node.names:
                    yield node.lineno, f"aftersale.{alias.name}"
            else:
                yield node.lineno, node.module


def test_no_package_imports_one_above_or_beside_it():
    wrong = []
    for folder, (_, floor) in FLOORS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, module in imports_of(path):
                target = package_of(module)
                if target in (None, "root", "aftersale" if folder == "aftersale" else ""):
                    continue
                if target == folder:
                    continue
                target_floor = FLOORS[target][1] if target != "aftersale" else 4
                if target_floor >= floor:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_our_packages_are_imported_by_their_installed_names_only():
    """A bare ``import store`` would load a second copy of the module beside aftersale.store."""
    bare = []
    for folder in [*FLOORS, "tests", "bench"]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, module in imports_of(path):
                if module.split(".")[0] in OUR_TOP_LEVEL - {"aftersale"}:
                    bare.append(f"{path.relative_to(ROOT)}:{line}: import {module}")
    assert not bare, "\n".join(bare)


def test_an_import_inside_a_function_says_why():
    """Imports belong at the top; one inside a function keeps an optional dependency or
    start-up cost out, and says so in a ``# deferred import:`` line above it."""
    silent = []
    for folder in FLOORS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().split("\n")
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                inner = [
                    node.lineno
                    for node in function.body
                    if isinstance(node, ast.Import | ast.ImportFrom)
                ]
                if inner and not lines[min(inner) - 2].strip().startswith("# deferred import:"):
                    silent.append(f"{path.relative_to(ROOT)}:{min(inner)}")
    assert not silent, "imports inside functions without a reason:\n" + "\n".join(silent)
