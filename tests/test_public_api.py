"""The public API of the security layer: ``from bastion.security import ...`` gives
every piece, each documented; one error root for the whole package; and the service
itself uses nothing but the public names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bastion
import bastion.security
from bastion.security import BastionError

SRC = Path(bastion.__file__).parent
# The ASGI type aliases carry no docstring of their own: the package's docstring names them.
ALIASES = {"ASGIApp", "Message", "Receive", "Scope", "Send"}


@pytest.mark.parametrize("name", bastion.security.__all__)
def test_every_public_name_imports_and_says_what_it_defends(name: str) -> None:
    value = getattr(bastion.security, name)
    if name in ALIASES:
        assert f"``{name}``" in (bastion.security.__doc__ or "")
        return
    assert inspect.isclass(value) or inspect.isfunction(value), name
    own = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
    assert own, f"{name} has no docstring of its own"
    assert len(own.split()) >= 5, f"{name}: a docstring says what it defends against"


def test_the_public_names_are_listed_once_and_sorted() -> None:
    names = bastion.security.__all__
    assert list(names) == sorted(set(names))
    assert {"RedisStore", "BastionError", "AttemptGuard", "PasswordHasher"} <= set(names)


def test_star_import_works_without_the_redis_package() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'redis' or name.startswith('redis.'):\n"
        "            raise ImportError('redis is blocked')\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "from bastion.security import *\n"
        "import bastion.security as s\n"
        "assert all(n in globals() for n in s.__all__)\n"
        "assert 'redis' not in sys.modules\n"
        "store = MemoryStore()\n"
        "try:\n"
        "    RedisStore.from_url('redis://127.0.0.1:1')\n"
        "except ImportError as exc:\n"
        "    print('ok' if 'pip install redis' in str(exc) else exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(SRC)], prefix="bastion.")]


def test_every_exception_of_the_package_has_one_root() -> None:
    found: list[type[BaseException]] = []
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("bastion")
            ):
                found.append(value)
    assert len(set(found)) >= 15  # the walk really saw the package's errors
    strays = sorted({e.__qualname__ for e in found if not issubclass(e, BastionError)})
    assert strays == []


def _service_files() -> list[Path]:
    files = [SRC / "app.py", SRC / "cli.py"]
    for folder in ("api", "usecases"):
        files += sorted((SRC / folder).rglob("*.py"))
    return files


def _private_imports(path: Path) -> list[str]:
    """Every import in ``path`` of a submodule of ``bastion.security`` (top level or in
    a function: lazy imports count)."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        bad += [
            f"{path.name}:{node.lineno} {n}" for n in names if n.startswith("bastion.security.")
        ]
    return bad


def test_the_service_imports_only_the_public_api_of_the_layer() -> None:
    files = _service_files()
    assert len(files) > 20
    assert [bad for path in files for bad in _private_imports(path)] == []


def test_the_import_check_catches_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from bastion.security import Rate\n"
        "def f():\n"
        "    from bastion.security.guard import AttemptGuard\n"
        "import bastion.security.tokens\n"
    )
    assert sorted(_private_imports(sample)) == [
        "sample.py:3 bastion.security.guard",
        "sample.py:4 bastion.security.tokens",
    ]
