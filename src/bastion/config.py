"""Every setting of the service, read once from ``BASTION_*`` environment variables.

``load_settings()`` is called by ``create_app`` and the CLI, never at import time, and
turns every bad value into one :class:`ConfigError` whose message names the variable.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion.security import BastionError
from bastion.security.hosts import AllowedHostsConfig
from bastion.security.limits import Rate, parse_duration, parse_rate
from bastion.security.origins import parse_origin
from bastion.store.urls import check_store_url

__all__ = ["ConfigError", "Settings", "load_settings"]

MIN_SECRET_BYTES = 32
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(BastionError):
    """The configuration cannot be used; the message says which variable and why."""


def _rate(value: Any) -> Any:
    return parse_rate(value) if isinstance(value, str) else value


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _networks(value: Any) -> Any:
    if isinstance(value, str):
        return [
            ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
        ]
    return value


def _hosts(value: Any) -> Any:
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list | tuple):
        AllowedHostsConfig(tuple(value))  # raises ValueError naming a bad entry
    return value


def _origin(value: Any) -> Any:
    return parse_origin(value) if isinstance(value, str) and value else value or None


def _address(value: Any) -> Any:
    """``host:port`` (``[::1]:9464`` for IPv6) into ``(host, port)``; empty is off."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not an address; expected 'host:port' (127.0.0.1:9464)")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{value!r}: the host must be an IP address or localhost") from None
    return (host, int(port))


def _cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one: Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _store_url(value: str | None) -> str | None:
    return check_store_url(value) if value else value


RateSetting = Annotated[Rate, NoDecode, BeforeValidator(_rate)]
DurationSetting = Annotated[int, BeforeValidator(_duration), Field(ge=1)]
AddressSetting = Annotated[tuple[str, int] | None, NoDecode, BeforeValidator(_address)]


class Settings(BaseSettings):
    """The typed settings object. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="BASTION_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    database_url: str | None = None
    redis_url: Annotated[str | None, AfterValidator(_store_url)] = None
    var_dir: Path = Path("var")

    access_secret: SecretStr | None = None
    refresh_secret: SecretStr | None = None
    access_secret_previous: SecretStr | None = None
    refresh_secret_previous: SecretStr | None = None
    # The key behind second factors: it seals TOTP secrets at rest, keys the digests of
    # recovery codes and signs login challenges (each use under its own derived key).
    # The previous one still opens what it sealed, for a rotation.
    mfa_secret: SecretStr | None = None
    mfa_secret_previous: SecretStr | None = None
    token_issuer: str = Field("bastion", min_length=1)
    token_audience: str = Field("bastion", min_length=1)
    access_ttl: DurationSetting = 15 * 60
    refresh_ttl: DurationSetting = 7 * 86400
    # A session ends this long after its login, however often it is refreshed (ASVS
    # 5.0 V7.3.2); the deadline is stored with the session when it starts.
    session_max_age: DurationSetting = 30 * 86400

    rate_limit_global: RateSetting = Rate(100, 900)
    rate_limit_auth: RateSetting = Rate(10, 3600)
    lockout: RateSetting = Rate(5, 900)
    trusted_proxies: Annotated[list[Network], NoDecode, BeforeValidator(_networks)] = []
    max_body_bytes: int = Field(10240, ge=256, le=64 * 1024 * 1024)
    # Host names the service answers to (bastion.security.hosts); empty: any.
    allowed_hosts: Annotated[list[str], NoDecode, BeforeValidator(_hosts)] = []
    # The origin browsers load the storefront from (bastion.security.origins).
    public_origin: Annotated[str | None, BeforeValidator(_origin)] = None

    # OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    argon2_memory_kib: int = Field(19456, ge=8)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_parallelism: int = Field(1, ge=1)
    hash_concurrency: int = Field(default_factory=_cores, ge=1)
    hash_queue: int = Field(16, ge=0)
    # The longest an attempt waits in the hasher's line before a 503: about six times
    # the longest wait a full line costs on one idle core (17 places x ~90 ms for a
    # password check), so reached only when hashes are starved of CPU.
    hash_max_wait: DurationSetting = 5

    # The PostgreSQL pool of each worker process, and its waits (bastion.db.pool).
    # Defaults measured in docs/deployment.md ("Pool size").
    database_pool_min: int = Field(2, ge=0, le=1000)
    database_pool_max: int = Field(10, ge=1, le=1000)
    database_pgbouncer: bool = False
    database_statement_timeout: DurationSetting = 10
    database_acquire_timeout: DurationSetting = 10
    database_connect_timeout: DurationSetting = 5

    # What one GraphQL query may cost (bastion.api.graphql.limits).
    graphql_max_depth: int = Field(6, ge=1, le=100)
    graphql_max_aliases: int = Field(15, ge=1, le=1000)
    graphql_max_tokens: int = Field(1000, ge=1, le=100_000)
    graphql_max_first: int = Field(100, ge=1, le=1000)

    # Operations: Prometheus metrics on an address of their own (off when unset), and
    # what SIGTERM does (bastion.shutdown): seconds of draining with /readyz at 503,
    # then seconds the requests in flight get to finish.
    metrics_address: AddressSetting = None
    shutdown_drain: float = Field(5.0, ge=0, le=600)
    shutdown_timeout: DurationSetting = 20

    @property
    def production(self) -> bool:
        return self.env == "production"

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.production:
            for name in ("access_secret", "refresh_secret", "mfa_secret"):
                value: SecretStr | None = getattr(self, name)
                if value is None and name == "mfa_secret":
                    continue  # second factors are off: enrolment and their logins get 503
                if value is None:
                    raise ValueError(f"BASTION_{name.upper()} is required in production")
                if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
                    raise ValueError(
                        f"BASTION_{name.upper()} must be at least {MIN_SECRET_BYTES} bytes"
                    )
            given = [s for s in (self.access_secret, self.refresh_secret, self.mfa_secret) if s]
            if len(set(given)) < len(given):
                raise ValueError(
                    "BASTION_ACCESS_SECRET, BASTION_REFRESH_SECRET and BASTION_MFA_SECRET"
                    " must differ"
                )
        return self

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.database_pool_min > self.database_pool_max:
            raise ValueError(
                f"BASTION_DATABASE_POOL_MIN ({self.database_pool_min}) must not exceed"
                f" BASTION_DATABASE_POOL_MAX ({self.database_pool_max})"
            )
        return self

    @model_validator(mode="after")
    def _check_session_lifetime(self) -> Settings:
        # Shorter than a refresh token's lifetime, every session would end before its
        # first token could: BASTION_REFRESH_TTL would promise what is never given.
        if self.session_max_age < self.refresh_ttl:
            raise ValueError(
                f"BASTION_SESSION_MAX_AGE ({self.session_max_age} s) must be at least"
                f" BASTION_REFRESH_TTL ({self.refresh_ttl} s)"
            )
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "bastion.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if not str(p).startswith("function-")]
        name = f"BASTION_{loc[0].upper()}" if loc else "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        if loc:
            lines.append(f"{name}: {message}")
        else:
            lines.append(message)
    return "; ".join(lines)


DEV_SECRETS = ("access", "refresh", "mfa")


def _dev_secrets(var_dir: Path) -> dict[str, str]:
    """Secrets generated once for development and kept in a 0600 file under ``var/``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "secrets.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} must not be readable by others (chmod 600 {path})") from None
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            data = None
        if not (
            isinstance(data, dict)
            and all(isinstance(data.get(k), str) and data[k] for k in ("access", "refresh"))
        ):
            raise ConfigError(
                f"{path} is damaged: delete it to generate new development secrets"
            ) from None
        if not (isinstance(data.get("mfa"), str) and data["mfa"]):
            # A file from before second factors: its tokens stay valid, the key is added.
            data["mfa"] = secrets.token_urlsafe(48)
            _write_private(path, data)
        return {k: data[k] for k in DEV_SECRETS}
    data = {k: secrets.token_urlsafe(48) for k in DEV_SECRETS}
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return data


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Replace ``path`` with ``data``, readable by its owner alone from the first byte."""
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        json.dump(data, f)
    partial.replace(path)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``) into :class:`Settings`.

    Raises :class:`ConfigError` with a message naming each bad variable.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    if not settings.production and None in (
        settings.access_secret,
        settings.refresh_secret,
        settings.mfa_secret,
    ):
        generated = _dev_secrets(settings.var_dir)
        settings = settings.model_copy(
            update={
                "access_secret": settings.access_secret or SecretStr(generated["access"]),
                "refresh_secret": settings.refresh_secret or SecretStr(generated["refresh"]),
                "mfa_secret": settings.mfa_secret or SecretStr(generated["mfa"]),
            }
        )
    return settings
