"""The reusable security layer: pure ASGI middleware and plain async functions.

Nothing in this package imports FastAPI, the database or the service's settings, so any
ASGI application (Starlette, FastAPI, Litestar) can use it on its own; everything a user
needs is imported from here, and what ``__all__`` lists is the public API::

    from bastion.security import AttemptGuard, GuardConfig, PasswordHasher, Rate

Names are loaded on first use, so importing the package costs nothing, and
``RedisStore`` (the only piece that needs the ``redis`` package) is never imported
unless asked for. ``ASGIApp``, ``Scope``, ``Receive``, ``Send`` and ``Message`` are the
ASGI type aliases the middleware are written against. Every error is a
:class:`BastionError`; the tree is drawn in :mod:`bastion.security.exceptions`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Bound now: a function named as its module would otherwise be shadowed by the module
# once anything imports it (a submodule's import sets the package's attribute).
from bastion.security.client_ip import client_ip

if TYPE_CHECKING:
    from bastion.security.asgi import (
        ASGIApp,
        Message,
        Receive,
        Scope,
        Send,
    )
    from bastion.security.body_limit import (
        BodyLimitConfig,
        BodyLimitMiddleware,
        BodyTooLarge,
    )
    from bastion.security.challenges import (
        ChallengeClaims,
        ChallengeRefused,
        LoginChallenges,
    )
    from bastion.security.client_ip import (
        ClientIPConfig,
        ClientIPMiddleware,
        rate_key,
    )
    from bastion.security.events import (
        FirstPerWindow,
        SecurityEventLog,
        configure_logging,
        logging_config,
    )
    from bastion.security.exceptions import (
        AttemptRefused,
        BastionError,
        ExpiredToken,
        InvalidCredentials,
        InvalidToken,
        RateLimited,
        SecurityError,
        Unavailable,
    )
    from bastion.security.guard import (
        Attempt,
        AttemptGuard,
        AttemptObserver,
        GuardConfig,
        Reservation,
    )
    from bastion.security.headers import (
        SecurityHeadersConfig,
        SecurityHeadersMiddleware,
        csp_nonce,
    )
    from bastion.security.hosts import (
        AllowedHostsConfig,
        AllowedHostsMiddleware,
    )
    from bastion.security.keys import (
        derive_key,
    )
    from bastion.security.limits import (
        Rate,
        parse_duration,
        parse_rate,
    )
    from bastion.security.media_type import (
        JsonOnlyMiddleware,
    )
    from bastion.security.origins import (
        OriginPolicy,
    )
    from bastion.security.passkeys import (
        NewPasskey,
        PasskeyConfig,
        PasskeyRefused,
        Passkeys,
        StoredPasskey,
        UsedPasskey,
    )
    from bastion.security.passwords import (
        HasherConfig,
        PasswordHasher,
        Place,
        password_problems,
    )
    from bastion.security.problems import (
        problem_body,
        send_problem,
    )
    from bastion.security.ratelimit import (
        RateLimitConfig,
        RateLimitMiddleware,
        add_policy,
        revocation_flag,
    )
    from bastion.security.recovery import (
        RecoveryCodes,
    )
    from bastion.security.redaction import (
        redact,
    )
    from bastion.security.request_id import (
        RequestIdMiddleware,
    )
    from bastion.security.sealed import (
        SealBroken,
        SecretBox,
    )
    from bastion.security.secret import (
        Secret,
    )
    from bastion.security.session_store import (
        MemorySessionStore,
        Session,
        SessionStore,
        SqlSessionStore,
    )
    from bastion.security.sessions import (
        IssuedTokens,
        RefreshRefused,
        RefreshReused,
        RefreshSessions,
        RevocationState,
        SessionConfig,
        flag_key,
    )
    from bastion.security.token_cache import (
        VerifiedTokenCache,
    )
    from bastion.security.tokens import (
        TokenCodec,
        TokenConfig,
    )
    from bastion.security.totp import (
        InvalidCode,
        TotpConfig,
        TotpVerifier,
    )
    from bastion.store import (
        Budget,
        Hit,
        MemoryStore,
        Store,
        StoreUnavailable,
        open_store,
    )
    from bastion.store.redis import (
        RedisStore,
    )

__all__ = [
    "ASGIApp",
    "AllowedHostsConfig",
    "AllowedHostsMiddleware",
    "Attempt",
    "AttemptGuard",
    "AttemptObserver",
    "AttemptRefused",
    "BastionError",
    "BodyLimitConfig",
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "Budget",
    "ChallengeClaims",
    "ChallengeRefused",
    "ClientIPConfig",
    "ClientIPMiddleware",
    "ExpiredToken",
    "FirstPerWindow",
    "GuardConfig",
    "HasherConfig",
    "Hit",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidToken",
    "IssuedTokens",
    "JsonOnlyMiddleware",
    "LoginChallenges",
    "MemorySessionStore",
    "MemoryStore",
    "Message",
    "NewPasskey",
    "OriginPolicy",
    "PasskeyConfig",
    "PasskeyRefused",
    "Passkeys",
    "PasswordHasher",
    "Place",
    "Rate",
    "RateLimitConfig",
    "RateLimitMiddleware",
    "RateLimited",
    "Receive",
    "RecoveryCodes",
    "RedisStore",
    "RefreshRefused",
    "RefreshReused",
    "RefreshSessions",
    "RequestIdMiddleware",
    "Reservation",
    "RevocationState",
    "Scope",
    "SealBroken",
    "Secret",
    "SecretBox",
    "SecurityError",
    "SecurityEventLog",
    "SecurityHeadersConfig",
    "SecurityHeadersMiddleware",
    "Send",
    "Session",
    "SessionConfig",
    "SessionStore",
    "SqlSessionStore",
    "Store",
    "StoreUnavailable",
    "StoredPasskey",
    "TokenCodec",
    "TokenConfig",
    "TotpConfig",
    "TotpVerifier",
    "Unavailable",
    "UsedPasskey",
    "VerifiedTokenCache",
    "add_policy",
    "client_ip",
    "configure_logging",
    "csp_nonce",
    "derive_key",
    "flag_key",
    "logging_config",
    "open_store",
    "parse_duration",
    "parse_rate",
    "password_problems",
    "problem_body",
    "rate_key",
    "redact",
    "revocation_flag",
    "send_problem",
]

# Where each public name is defined: imported from there on first use.
_WHERE: dict[str, str] = {
    "AttemptRefused": "bastion.security.exceptions",
    "BastionError": "bastion.security.exceptions",
    "ExpiredToken": "bastion.security.exceptions",
    "InvalidCredentials": "bastion.security.exceptions",
    "InvalidToken": "bastion.security.exceptions",
    "RateLimited": "bastion.security.exceptions",
    "SecurityError": "bastion.security.exceptions",
    "Unavailable": "bastion.security.exceptions",
    "ASGIApp": "bastion.security.asgi",
    "Message": "bastion.security.asgi",
    "Receive": "bastion.security.asgi",
    "Scope": "bastion.security.asgi",
    "Send": "bastion.security.asgi",
    "BodyLimitConfig": "bastion.security.body_limit",
    "BodyLimitMiddleware": "bastion.security.body_limit",
    "BodyTooLarge": "bastion.security.body_limit",
    "ClientIPConfig": "bastion.security.client_ip",
    "ClientIPMiddleware": "bastion.security.client_ip",
    "rate_key": "bastion.security.client_ip",
    "FirstPerWindow": "bastion.security.events",
    "SecurityEventLog": "bastion.security.events",
    "configure_logging": "bastion.security.events",
    "logging_config": "bastion.security.events",
    "Attempt": "bastion.security.guard",
    "AttemptGuard": "bastion.security.guard",
    "AttemptObserver": "bastion.security.guard",
    "GuardConfig": "bastion.security.guard",
    "Reservation": "bastion.security.guard",
    "SecurityHeadersConfig": "bastion.security.headers",
    "SecurityHeadersMiddleware": "bastion.security.headers",
    "csp_nonce": "bastion.security.headers",
    "AllowedHostsConfig": "bastion.security.hosts",
    "AllowedHostsMiddleware": "bastion.security.hosts",
    "Rate": "bastion.security.limits",
    "parse_duration": "bastion.security.limits",
    "parse_rate": "bastion.security.limits",
    "JsonOnlyMiddleware": "bastion.security.media_type",
    "OriginPolicy": "bastion.security.origins",
    "NewPasskey": "bastion.security.passkeys",
    "PasskeyConfig": "bastion.security.passkeys",
    "PasskeyRefused": "bastion.security.passkeys",
    "Passkeys": "bastion.security.passkeys",
    "StoredPasskey": "bastion.security.passkeys",
    "UsedPasskey": "bastion.security.passkeys",
    "HasherConfig": "bastion.security.passwords",
    "PasswordHasher": "bastion.security.passwords",
    "Place": "bastion.security.passwords",
    "password_problems": "bastion.security.passwords",  # nosec B105: a module path
    "problem_body": "bastion.security.problems",
    "send_problem": "bastion.security.problems",
    "RateLimitConfig": "bastion.security.ratelimit",
    "RateLimitMiddleware": "bastion.security.ratelimit",
    "add_policy": "bastion.security.ratelimit",
    "revocation_flag": "bastion.security.ratelimit",
    "redact": "bastion.security.redaction",
    "RequestIdMiddleware": "bastion.security.request_id",
    "Secret": "bastion.security.secret",  # nosec B105: a module path
    "IssuedTokens": "bastion.security.sessions",
    "RefreshRefused": "bastion.security.sessions",
    "RefreshReused": "bastion.security.sessions",
    "RefreshSessions": "bastion.security.sessions",
    "SessionConfig": "bastion.security.sessions",
    "RevocationState": "bastion.security.sessions",
    "flag_key": "bastion.security.sessions",
    "MemorySessionStore": "bastion.security.session_store",
    "Session": "bastion.security.session_store",
    "SessionStore": "bastion.security.session_store",
    "SqlSessionStore": "bastion.security.session_store",
    "VerifiedTokenCache": "bastion.security.token_cache",
    "TokenCodec": "bastion.security.tokens",
    "TokenConfig": "bastion.security.tokens",
    # Second factors: TOTP, recovery codes, the login challenge, sealed secrets.
    "ChallengeClaims": "bastion.security.challenges",
    "ChallengeRefused": "bastion.security.challenges",
    "LoginChallenges": "bastion.security.challenges",
    "derive_key": "bastion.security.keys",
    "RecoveryCodes": "bastion.security.recovery",
    "SealBroken": "bastion.security.sealed",
    "SecretBox": "bastion.security.sealed",
    "InvalidCode": "bastion.security.totp",
    "TotpConfig": "bastion.security.totp",
    "TotpVerifier": "bastion.security.totp",
    "Budget": "bastion.store",
    "Hit": "bastion.store",
    "MemoryStore": "bastion.store",
    "Store": "bastion.store",
    "StoreUnavailable": "bastion.store",
    "open_store": "bastion.store",
    "RedisStore": "bastion.store.redis",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (``RedisStore`` only if asked for)."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(where), name)
    except ImportError as exc:
        if name != "RedisStore":
            raise
        value = _missing_redis(exc)
    globals()[name] = value
    return value


def _missing_redis(cause: ImportError) -> Any:
    """A stand-in for ``RedisStore`` when ``redis`` is not installed: the star import
    works, and using it says what to install."""

    class RedisStore:
        """The Redis store, unavailable: the ``redis`` package is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("RedisStore needs the redis package (pip install redis)") from cause

        @classmethod
        def from_url(cls, *args: Any, **kwargs: Any) -> Any:
            return cls(*args, **kwargs)

    return RedisStore


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
