"""``bastion check``: the configuration as loaded (secrets masked), and whether what the
service needs is ready: the database, the store (each node of a cluster), the schema.

Nothing here changes data. Opening SQLite creates its file when missing, and looking
for pending migrations creates the empty ``schema_migrations`` table when missing (as
``bastion migrate`` would), nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bastion.config import Settings
from bastion.store.urls import is_cluster_url, mask_url

__all__ = ["Readiness", "check_ready", "masked_settings"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """One thing checked: ``ok`` and what was found (never a secret)."""

    name: str
    ok: bool
    detail: str


def masked_settings(settings: Settings) -> list[tuple[str, str]]:
    """``(BASTION_NAME, value)`` for every setting, in declaration order: secrets as
    ``***`` (or ``(unset)``), passwords inside URLs as ``***``."""
    rows = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "***" if value.get_secret_value() else "(unset)"
        elif value is None:
            shown = "(unset)"
        elif name.endswith("_url") and isinstance(value, str):
            shown = mask_url(value)
        elif isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value) or "(none)"
        elif isinstance(value, Path):
            shown = str(value)
        else:
            shown = str(value)
        rows.append((f"BASTION_{name.upper()}", shown))
    return rows


def _failure(exc: BaseException) -> str:
    # The type and the library's message: neither carries a password (URLs never
    # reach these messages masked or not; the drivers name host and port only).
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _database(settings: Settings, wait: float) -> list[Readiness]:
    from bastion.db import open_database
    from bastion.db.migrations import pending

    kind = "PostgreSQL" if settings.database_url else f"SQLite ({settings.sqlite_path})"
    db = open_database(settings.effective_database_url)
    try:
        await asyncio.wait_for(db.ping(), wait)
        steps = await asyncio.wait_for(pending(db), wait)
    # Any failure at all is the answer "not ready", printed, never a traceback.
    except Exception as exc:
        return [Readiness("database", False, f"{kind}: {_failure(exc)}")]
    finally:
        # Closing what never opened fails too: nothing more to report.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(db.close(), wait)
    migrations = (
        Readiness("migrations", True, "schema up to date")
        if not steps
        else Readiness(
            "migrations",
            False,
            f"{len(steps)} pending ({', '.join(str(s.version) for s in steps)}):"
            " run `bastion migrate`",
        )
    )
    return [Readiness("database", True, f"{kind}: answers"), migrations]


async def _store(settings: Settings, wait: float) -> list[Readiness]:
    if not settings.redis_url:
        return [Readiness("store", True, "in-process (one worker, nothing shared)")]
    from bastion.store import StoreUnavailable
    from bastion.store.redis import RedisStore

    url = settings.redis_url
    kind = "Redis Cluster" if is_cluster_url(url) else "Redis"
    store = RedisStore.from_url(url, timeout=wait)
    try:
        try:
            await store.ping()
        except StoreUnavailable as exc:
            return [Readiness("store", False, f"{kind} {mask_url(url)}: {exc}")]
        rows = [Readiness("store", True, f"{kind} {mask_url(url)}: answers")]
        if is_cluster_url(url):
            from redis.asyncio.cluster import RedisCluster

            from bastion.store.cluster import cluster_nodes

            client = store.client
            if not isinstance(client, RedisCluster):
                raise TypeError("a cluster URL opened a single-server client")
            for node in await cluster_nodes(client, wait=wait):
                role = "master" if "master" in node.flags else "replica"
                state = "answers" if node.ok else node.detail
                rows.append(Readiness(f"  node {node.name}", node.ok, f"{role}, {state}"))
        return rows
    except Exception as exc:  # any failure is "not ready", never a traceback
        return [Readiness("store", False, f"{kind} {mask_url(url)}: {_failure(exc)}")]
    finally:
        await store.aclose()


async def check_ready(settings: Settings, *, wait: float = 2.0) -> list[Readiness]:
    """Every check, the database's and the store's at once; each wait bounded by
    ``wait`` seconds. Ready when every row is ``ok``."""
    database, store = await asyncio.gather(_database(settings, wait), _store(settings, wait))
    return [*database, *store]
