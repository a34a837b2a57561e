"""Schema migrations: numbered steps, applied in order, all pending ones in one transaction.

Each step has a PostgreSQL and a SQLite form of its DDL (types differ: ``uuid`` and
``timestamptz`` against ``TEXT``); the queries that read and write the tables are
shared. Concurrent starters serialise on an advisory lock (PostgreSQL) or on SQLite's
single writer, so one worker applies the pending steps and no step is applied twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion.db.database import Database

__all__ = ["MIGRATIONS", "migrate", "pending"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    postgresql: tuple[str, ...]
    sqlite: tuple[str, ...]


def _both(*statements: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Write DDL once with portable placeholders for the types that differ."""
    pg = tuple(s.replace("{UUID}", "uuid").replace("{TS}", "timestamptz") for s in statements)
    lite = tuple(s.replace("{UUID}", "TEXT").replace("{TS}", "TIMESTAMPTZ") for s in statements)
    return pg, lite


_INITIAL = _both(
    """CREATE TABLE users (
        id {UUID} PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
        flagged BOOLEAN NOT NULL DEFAULT FALSE,
        created_at {TS} NOT NULL,
        password_changed_at {TS} NOT NULL
    )""",
    """CREATE TABLE products (
        id {UUID} PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
        currency TEXT NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        created_at {TS} NOT NULL
    )""",
    """CREATE TABLE promo_codes (
        code TEXT PRIMARY KEY,
        percent_off INTEGER NOT NULL CHECK (percent_off BETWEEN 0 AND 100),
        active BOOLEAN NOT NULL DEFAULT TRUE,
        expires_at {TS},
        created_at {TS} NOT NULL
    )""",
    """CREATE TABLE orders (
        id {UUID} PRIMARY KEY,
        user_id {UUID} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
        ship_line1 TEXT NOT NULL,
        ship_city TEXT NOT NULL,
        ship_postcode TEXT NOT NULL,
        ship_country TEXT NOT NULL,
        promo_code TEXT REFERENCES promo_codes(code),
        subtotal_cents INTEGER NOT NULL,
        discount_cents INTEGER NOT NULL,
        total_cents INTEGER NOT NULL,
        currency TEXT NOT NULL,
        created_at {TS} NOT NULL
    )""",
    "CREATE INDEX orders_by_owner ON orders (user_id, created_at DESC, id DESC)",
    """CREATE TABLE order_items (
        order_id {UUID} NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        product_id {UUID} NOT NULL REFERENCES products(id),
        quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
        unit_price_cents INTEGER NOT NULL,
        PRIMARY KEY (order_id, position)
    )""",
    """CREATE TABLE sessions (
        id {UUID} PRIMARY KEY,
        user_id {UUID} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_id TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        created_at {TS} NOT NULL,
        last_used_at {TS} NOT NULL,
        expires_at {TS} NOT NULL,
        revoked_at {TS},
        revoked_reason TEXT,
        user_agent TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX sessions_by_user ON sessions (user_id, created_at)",
    """CREATE TABLE security_events (
        id {UUID} PRIMARY KEY,
        ts {TS} NOT NULL,
        event TEXT NOT NULL,
        ip TEXT NOT NULL,
        user_id {UUID},
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        request_id TEXT NOT NULL,
        reason TEXT
    )""",
    "CREATE INDEX security_events_by_time ON security_events (ts DESC, id DESC)",
)

# The catalogue's order (bastion.db.catalogue): name without ASCII case, then id.
_PRODUCTS_BY_NAME = (
    ('CREATE INDEX products_by_name ON products ((lower(name COLLATE "C")), id) WHERE active',),
    ("CREATE INDEX products_by_name ON products (lower(name), id) WHERE active",),
)

# The absolute end of each session (ASVS 5.0 V7.3.2), set at login and never moved by
# a refresh. Sessions that predate it get the default lifetime (30 days) from their
# login; a refresh token of theirs that would live past that is cut to it.
_SESSION_ENDS_AT_PG = (
    "ALTER TABLE sessions ADD COLUMN ends_at timestamptz",
    "UPDATE sessions SET ends_at = created_at + interval '30 days'",
    "UPDATE sessions SET expires_at = LEAST(expires_at, ends_at)",
    "ALTER TABLE sessions ALTER COLUMN ends_at SET NOT NULL",
)
# SQLite cannot make a column NOT NULL after the fact: the default never survives the
# UPDATE. Timestamps are fixed-width text (bastion.db.database), so the date arithmetic
# keeps their form: the seconds part moved 30 days, the fraction and offset kept.
_SESSION_ENDS_AT_SQLITE = (
    "ALTER TABLE sessions ADD COLUMN ends_at TIMESTAMPTZ NOT NULL"
    " DEFAULT '0001-01-01T00:00:00.000000+00:00'",
    "UPDATE sessions SET ends_at ="
    " strftime('%Y-%m-%dT%H:%M:%S', substr(created_at, 1, 19), '+30 days')"
    " || substr(created_at, 20)",
    "UPDATE sessions SET expires_at = MIN(expires_at, ends_at)",
)

# Second factors: a TOTP secret per user (sealed: bastion.security.SecretBox), its
# recovery codes (keyed digests, never the codes), passkeys (WebAuthn credentials), and
# how each session's login was authenticated (RFC 8176 method names, space-separated).
_SECOND_FACTORS = _both(
    """CREATE TABLE totp_factors (
        user_id {UUID} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        secret_sealed TEXT NOT NULL,
        confirmed_at {TS},
        created_at {TS} NOT NULL
    )""",
    """CREATE TABLE recovery_codes (
        user_id {UUID} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_digest TEXT NOT NULL,
        used_at {TS},
        created_at {TS} NOT NULL,
        PRIMARY KEY (user_id, code_digest)
    )""",
    """CREATE TABLE passkeys (
        id TEXT PRIMARY KEY,
        user_id {UUID} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        public_key TEXT NOT NULL,
        sign_count BIGINT NOT NULL DEFAULT 0,
        transports TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL,
        created_at {TS} NOT NULL,
        last_used_at {TS}
    )""",
    "CREATE INDEX passkeys_by_user ON passkeys (user_id, created_at)",
    "ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd'",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", postgresql=_INITIAL[0], sqlite=_INITIAL[1]),
    Migration(
        2,
        "products by name",
        postgresql=_PRODUCTS_BY_NAME[0],
        sqlite=_PRODUCTS_BY_NAME[1],
    ),
    Migration(
        3,
        "sessions end at an absolute deadline",
        postgresql=_SESSION_ENDS_AT_PG,
        sqlite=_SESSION_ENDS_AT_SQLITE,
    ),
    Migration(4, "second factors", postgresql=_SECOND_FACTORS[0], sqlite=_SECOND_FACTORS[1]),
)

_VERSIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


_LOCK = "SELECT pg_advisory_xact_lock(7201531)"


async def _locked_versions(db: Database, conn: Any) -> set[int]:
    """Take the lock in ``conn``'s transaction, then read the applied versions. Under the
    lock too: two PostgreSQL sessions racing through CREATE TABLE IF NOT EXISTS can both
    decide to create it, and the loser fails on a unique index."""
    if db.dialect == "postgresql":
        await conn.execute(_LOCK)
    await conn.execute(_VERSIONS)
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def _applied(db: Database) -> set[int]:
    async with db.transaction() as conn:
        return await _locked_versions(db, conn)


async def pending(db: Database) -> list[Migration]:
    done = await _applied(db)
    return [m for m in MIGRATIONS if m.version not in done]


async def migrate(db: Database) -> list[Migration]:
    """Apply every pending step; returns the steps this call applied.

    The pending steps run in one transaction, under the lock from first to last: one
    starter applies them all while the others wait and then find nothing to do (a lock
    per step would let starters take turns, and one that saw a step applied could race
    the first to the next). It is also all or nothing: a step that fails leaves the
    schema as it was, never half-migrated. Both engines' DDL is transactional, and an
    advisory transaction lock holds on one server connection behind PgBouncer's
    transaction pooling, where a session lock would not.
    """
    async with db.transaction() as conn:
        done = await _locked_versions(db, conn)
        steps = [m for m in MIGRATIONS if m.version not in done]
        for step in steps:
            for statement in step.postgresql if db.dialect == "postgresql" else step.sqlite:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                step.version,
                step.name,
                datetime.now(UTC).isoformat(),
            )
    return steps
