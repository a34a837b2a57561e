"""Durable state: schema, migrations and repositories over SQLite or PostgreSQL."""

from bastion.db.database import Database, DatabaseUnavailable, IntegrityConflict, open_database

__all__ = ["Database", "DatabaseUnavailable", "IntegrityConflict", "open_database"]
