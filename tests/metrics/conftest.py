"""Fixtures of the metrics tests: a private Redis that a test may stop."""

from tests.security.conftest import redis_server

__all__ = ["redis_server"]
