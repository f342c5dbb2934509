"""The packages' dependencies point one way (DESIGN.md, "Layout"): tasknet -> worker, indexer, relayer -> oracle.
Read from the source with ast (imports inside functions included); nothing is imported."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("oracle", "worker", "indexer", "relayer", "tasknet")
#: what each package may import among the others
ALLOWED = {
    "oracle": set(),
    "worker": {"oracle"},
    "indexer": {"oracle"},
    "relayer": {"oracle"},
    "tasknet": {"oracle", "worker", "indexer", "relayer"},
}


@functools.cache
def imported_packages(package: str) -> dict[str, set[str]]:
    """Sibling packages each module of ``package`` imports: {other package: {module paths}}."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_lies_below_it(package: str) -> None:
    wrong = {other: sorted(paths) for other, paths in imported_packages(package).items()
             if other not in ALLOWED[package]}
    assert wrong == {}, f"{package} must not import {', '.join(wrong)}: {wrong}"


def test_the_relayer_is_imported_by_the_cli_only() -> None:
    users = [p for p in PACKAGES if p != "relayer" and "relayer" in imported_packages(p)]
    assert users == ["tasknet"]
    assert not (ROOT / "oracle" / "relayer.py").exists()
