"""Scratch PostgreSQL databases on a server the tests did not start: created with a random
name, dropped (with every connection to them) at the end."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager


async def _admin(server_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def scratch_postgres(server_url: str, prefix: str = "bastion_scratch") -> Iterator[str]:
    """A fresh, empty database on the server of ``server_url``; yields its URL.

    Call it outside a running event loop (it runs its own for the two admin statements).
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
