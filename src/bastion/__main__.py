"""The ``bastion`` command (and ``python -m bastion``): the service's CLI, if it is installed.

``pip install bastion`` installs the security layer alone; the CLI needs the service's
dependencies (``pip install 'bastion[service]'``). Without them the command says so in
one line instead of ending in an ``ImportError`` traceback.
"""

from __future__ import annotations

import sys

# What the service extra brings that the CLI imports, by top-level module name.
SERVICE_MODULES = frozenset(
    {
        "aiosqlite",
        "asyncpg",
        "fastapi",
        "fastapi_offline",
        "httpx",
        "prometheus_client",
        "pydantic",
        "pydantic_settings",
        "redis",
        "rich",
        "starlette",
        "strawberry",
        "typer",
        "uvicorn",
    }
)
MISSING = (
    "bastion: the command needs the service, which is not installed "
    "(missing module {name!r}).\n"
    "  Install it with: pip install 'bastion[service]'\n"
    "  The security layer alone needs none of it: from bastion.security import ...\n"
)


def main() -> None:
    try:
        from bastion.cli import main as cli_main
    except ModuleNotFoundError as exc:
        name = (exc.name or "").partition(".")[0]
        if name not in SERVICE_MODULES:
            raise
        sys.stderr.write(MISSING.format(name=name))
        raise SystemExit(1) from None
    cli_main()


if __name__ == "__main__":
    main()
