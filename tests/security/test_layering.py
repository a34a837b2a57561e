"""``bastion.security`` is the reusable layer: it must not reach into a framework, the
database, the API or the service's settings (STYLE.md, point 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bastion.security

PACKAGE = Path(bastion.security.__file__).parent
FORBIDDEN = ("fastapi", "starlette", "bastion.db", "bastion.api", "bastion.config", "bastion.app")
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden_in(names: set[str]) -> list[str]:
    return sorted(n for n in names for f in FORBIDDEN if n == f or n.startswith(f + "."))


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) > 10


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_security_modules_import_no_framework_database_api_or_settings(module: Path) -> None:
    assert forbidden_in(imported_names(module.read_text())) == []


def test_the_check_itself_spots_a_forbidden_import() -> None:
    source = "import fastapi\nfrom starlette.responses import Response\nfrom bastion.db import x\n"
    assert forbidden_in(imported_names(source)) == [
        "bastion.db",
        "bastion.db.x",
        "fastapi",
        "starlette.responses",
        "starlette.responses.Response",
    ]
