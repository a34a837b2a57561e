"""Durable state: schema, migrations and repositories over SQLite or PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.db.database import (
    Database,
    DatabaseUnavailable,
    IntegrityConflict,
    PgTimeouts,
    open_database,
)
from bastion.db.pool import PgPool

if TYPE_CHECKING:
    from bastion.config import Settings

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "IntegrityConflict",
    "open_configured",
    "open_database",
]


def open_configured(settings: Settings) -> Database:
    """The database of ``settings``, with its pool and its waits (``BASTION_DATABASE_*``).

    The client's limit on a round trip is the statement timeout plus 2 s, so that the
    server's own cancel normally comes first.
    """
    statement = float(settings.database_statement_timeout)
    return open_database(
        settings.effective_database_url,
        pool=PgPool(
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            pgbouncer=settings.database_pgbouncer,
        ),
        timeouts=PgTimeouts(
            statement=statement,
            command=statement + 2.0,
            acquire=float(settings.database_acquire_timeout),
            connect=float(settings.database_connect_timeout),
        ),
    )
