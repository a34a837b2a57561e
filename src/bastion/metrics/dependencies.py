"""The store and the database, counted: every operation that raises ``StoreUnavailable``
or ``DatabaseUnavailable`` adds one to its error counter, then raises on unchanged.

These wrap the backends only when metrics are on (:func:`metered_store`,
:func:`metered_database` return their argument otherwise), so that the backends know
nothing of metrics and cost nothing more when they are off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bastion.db import Database, DatabaseUnavailable
from bastion.db.database import Dialect, Row
from bastion.metrics.registry import Metrics
from bastion.store import Budget, Hit, Store, StoreUnavailable

if TYPE_CHECKING:
    from prometheus_client import Counter

__all__ = ["MeteredDatabase", "MeteredStore", "circuit_open", "metered_database", "metered_store"]


def circuit_open(store: Store) -> bool:
    """Whether the store's circuit breaker is not closed (stores without one: never)."""
    return bool(getattr(store, "circuit_open", False))


class MeteredStore:
    """A :class:`~bastion.store.Store` that counts its failures in ``errors``."""

    __slots__ = ("_errors", "inner")

    def __init__(self, inner: Store, errors: Counter) -> None:
        self.inner = inner
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # anything beyond the protocol: the backend's

    @property
    def circuit_open(self) -> bool:
        return circuit_open(self.inner)

    async def hit(
        self, key: str, *, limit: int, window: float, check_flag: str | None = None
    ) -> Hit:
        try:
            return await self.inner.hit(key, limit=limit, window=window, check_flag=check_flag)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def take(self, budgets: Sequence[Budget]) -> list[Hit]:
        try:
            return await self.inner.take(budgets)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def give_back(
        self, *, release: Sequence[tuple[str, int]] = (), reset: Sequence[str] = ()
    ) -> None:
        try:
            await self.inner.give_back(release=release, reset=reset)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def peek(self, key: str, *, limit: int) -> Hit:
        try:
            return await self.inner.peek(key, limit=limit)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def release(self, key: str, *, window: int) -> None:
        try:
            await self.inner.release(key, window=window)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def reset(self, key: str) -> None:
        try:
            await self.inner.reset(key)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def set_flag(self, key: str, *, ttl: float) -> None:
        try:
            await self.inner.set_flag(key, ttl=ttl)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def has_flag(self, key: str) -> bool:
        try:
            return await self.inner.has_flag(key)
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def ping(self) -> None:
        try:
            await self.inner.ping()
        except StoreUnavailable:
            self._errors.inc()
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


class MeteredDatabase:
    """A :class:`~bastion.db.Database` that counts its failures in ``errors``; any
    other attribute (``dialect``, ``url``...) is the wrapped database's."""

    __slots__ = ("_errors", "dialect", "inner")

    def __init__(self, inner: Database, errors: Counter) -> None:
        self.inner = inner
        self.dialect: Dialect = inner.dialect
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        try:
            async with self.inner.transaction() as conn:
                yield conn
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    def transaction(self) -> Any:
        return self._transaction()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return await self.inner.fetch(sql, *args)
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            return await self.inner.fetchrow(sql, *args)
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self.inner.execute(sql, *args)
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        try:
            await self.inner.executemany(sql, args)
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    async def ping(self) -> None:
        try:
            await self.inner.ping()
        except DatabaseUnavailable:
            self._errors.inc()
            raise

    async def close(self) -> None:
        await self.inner.close()


def metered_store(store: Store, metrics: Metrics | None) -> Store:
    return store if metrics is None else MeteredStore(store, metrics.store_errors)


def metered_database(db: Database, metrics: Metrics | None) -> Database:
    return db if metrics is None else MeteredDatabase(db, metrics.database_errors)
