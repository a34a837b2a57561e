"""How the PostgreSQL pool connects: its size, and what PgBouncer needs.

The sizes are per worker process: ``--workers 4`` with ``max_size=10`` may hold 40
connections. :func:`pool_arguments` is everything ``asyncpg.create_pool`` is given
besides the URL and the reset callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.db.database import PgTimeouts

__all__ = ["PgPool", "pool_arguments"]

# Closes a transaction left open by a client that vanished mid-way (its locks with it).
IDLE_IN_TRANSACTION_MS = 30_000


@dataclass(frozen=True, slots=True)
class PgPool:
    """``min_size`` connections are opened at start-up and kept, up to ``max_size``
    under load (a request past that waits ``PgTimeouts.acquire`` for one).

    ``pgbouncer``: the URL is a PgBouncer in transaction (or statement) pooling mode,
    where consecutive transactions of one client connection may run on different
    server connections. Two things then change:

    - no prepared statement is ever named or kept (asyncpg's statement cache is off:
      ``statement_cache_size=0``). A named statement prepared on one server connection
      does not exist on the next one (``prepared statement "__asyncpg_stmt_1__" does
      not exist``), or already exists there. With the cache off, asyncpg parses every
      query again, unnamed, in the same message batch as its execution, which PgBouncer
      keeps on one server connection. That costs the server a parse per query.
    - no session setting is sent at connection start: PgBouncer refuses startup
      parameters it does not track (``unsupported startup parameter:
      statement_timeout``), and a ``SET`` would change a server connection that other
      clients share. The statement and idle-in-transaction timeouts then belong to the
      server side: PgBouncer's ``connect_query``, or ``ALTER ROLE ... SET`` (see
      docs/deployment.md). The client's own ``command`` timeout still bounds every
      wait.
    """

    min_size: int = 2
    max_size: int = 10
    pgbouncer: bool = False

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"a pool needs at least one connection, not {self.max_size}")
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(
                f"the pool's minimum ({self.min_size}) must lie between 0 and its maximum"
                f" ({self.max_size})"
            )


def server_settings(timeouts: PgTimeouts) -> dict[str, str]:
    """The session settings sent at connection start (never through PgBouncer)."""
    return {
        "statement_timeout": str(int(timeouts.statement * 1000)),
        "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
    }


def pool_arguments(pool: PgPool, timeouts: PgTimeouts) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.create_pool`` for this pool and these waits."""
    arguments: dict[str, Any] = {
        "min_size": pool.min_size,
        "max_size": pool.max_size,
        "timeout": timeouts.connect,
        # A timer on the connection's protocol (no task per query).
        "command_timeout": timeouts.command,
    }
    if pool.pgbouncer:
        arguments["statement_cache_size"] = 0
    else:
        arguments["server_settings"] = server_settings(timeouts)
    return arguments
