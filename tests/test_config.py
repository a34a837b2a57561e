"""Settings from BASTION_* variables: every one parsed, every bad value a ConfigError
that names the variable, and secrets that production refuses to guess (missing or weak
ones stopping start-up: tests/attacks/test_api8_security_misconfiguration.py)."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest

from bastion.config import ConfigError, Settings, load_settings
from bastion.security.limits import Rate

SECRET_A = "a" * 32
SECRET_B = "b" * 32


def test_the_defaults_are_the_contracts(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = load_settings()
    assert s.env == "development"
    assert not s.production
    assert s.database_url is None
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'var' / 'bastion.sqlite3'}"
    assert s.redis_url is None
    assert (s.token_issuer, s.token_audience) == ("bastion", "bastion")
    assert (s.access_ttl, s.refresh_ttl) == (15 * 60, 7 * 86400)
    assert s.rate_limit_global == Rate(100, 15 * 60)
    assert s.rate_limit_auth == Rate(10, 3600)
    assert s.lockout == Rate(5, 15 * 60)
    assert s.trusted_proxies == []
    assert s.max_body_bytes == 10240
    assert s.access_secret_previous is None
    assert s.refresh_secret_previous is None


def test_every_variable_of_the_contract_is_read(env: pytest.MonkeyPatch) -> None:
    values = {
        "BASTION_ENV": "production",
        "BASTION_DATABASE_URL": "postgresql://u@db/bastion",
        "BASTION_REDIS_URL": "redis://cache:6379/3",
        "BASTION_ACCESS_SECRET": SECRET_A,
        "BASTION_REFRESH_SECRET": SECRET_B,
        "BASTION_ACCESS_SECRET_PREVIOUS": "c" * 32,
        "BASTION_REFRESH_SECRET_PREVIOUS": "d" * 32,
        "BASTION_TOKEN_ISSUER": "https://issuer.example",
        "BASTION_TOKEN_AUDIENCE": "orders",
        "BASTION_ACCESS_TTL": "5m",
        "BASTION_REFRESH_TTL": "30d",
        "BASTION_RATE_LIMIT_GLOBAL": "1000/hour",
        "BASTION_RATE_LIMIT_AUTH": "20/30minutes",
        "BASTION_LOCKOUT": "3/day",
        "BASTION_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,2001:db8::/32",
        "BASTION_MAX_BODY_BYTES": "4096",
    }
    for name, value in values.items():
        env.setenv(name, value)
    s = load_settings()
    assert s.production
    assert s.database_url == "postgresql://u@db/bastion"
    assert s.effective_database_url == "postgresql://u@db/bastion"
    assert s.redis_url == "redis://cache:6379/3"
    secrets = (
        s.access_secret,
        s.refresh_secret,
        s.access_secret_previous,
        s.refresh_secret_previous,
    )
    assert [x.get_secret_value() for x in secrets if x] == [SECRET_A, SECRET_B, "c" * 32, "d" * 32]
    assert (s.token_issuer, s.token_audience) == ("https://issuer.example", "orders")
    assert (s.access_ttl, s.refresh_ttl) == (300, 30 * 86400)
    assert s.rate_limit_global == Rate(1000, 3600)
    assert s.rate_limit_auth == Rate(20, 1800)
    assert s.lockout == Rate(3, 86400)
    assert s.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    assert s.max_body_bytes == 4096


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/15minutes", Rate(100, 900)),
        ("10/hour", Rate(10, 3600)),
        ("10/hours", Rate(10, 3600)),
        ("5/15 minutes", Rate(5, 900)),
        ("1/second", Rate(1, 1)),
        ("7/2days", Rate(7, 2 * 86400)),
        ("3/MINUTE", Rate(3, 60)),
        (" 50 / 10 seconds ", Rate(50, 10)),
    ],
)
def test_rate_formats_are_parsed(env: pytest.MonkeyPatch, text: str, rate: Rate) -> None:
    env.setenv("BASTION_RATE_LIMIT_GLOBAL", text)
    assert load_settings().rate_limit_global == rate


@pytest.mark.parametrize(
    "text", ["abc", "", "100", "0/minute", "-1/hour", "10/0minutes", "10/fortnight", "10/1.5hours",
             "1e3/hour", "100/15minutes;drop"],
)  # fmt: skip
@pytest.mark.parametrize(
    "name", ["BASTION_RATE_LIMIT_GLOBAL", "BASTION_RATE_LIMIT_AUTH", "BASTION_LOCKOUT"]
)
def test_a_bad_rate_is_a_config_error_naming_the_variable(
    env: pytest.MonkeyPatch, name: str, text: str
) -> None:
    env.setenv(name, text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{name}: ")


def test_the_rate_error_says_what_a_rate_looks_like(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_RATE_LIMIT_GLOBAL", "abc")
    with pytest.raises(ConfigError, match=r"BASTION_RATE_LIMIT_GLOBAL: 'abc' is not a rate"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("7d", 604800), ("900", 900), ("2h", 7200), ("90s", 90), ("2hours", 7200),
     ("1 day", 86400)],
)  # fmt: skip
def test_durations_are_parsed(env: pytest.MonkeyPatch, text: str, seconds: int) -> None:
    env.setenv("BASTION_ACCESS_TTL", text)
    env.setenv("BASTION_REFRESH_TTL", text)
    s = load_settings()
    assert (s.access_ttl, s.refresh_ttl) == (seconds, seconds)


@pytest.mark.parametrize("text", ["0", "0m", "abc", "15x", "-5m", "1.5h", ""])
@pytest.mark.parametrize(
    "name", ["BASTION_ACCESS_TTL", "BASTION_REFRESH_TTL", "BASTION_HASH_MAX_WAIT"]
)
def test_a_bad_duration_is_a_config_error_naming_the_variable(
    env: pytest.MonkeyPatch, name: str, text: str
) -> None:
    env.setenv(name, text)
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings()


def test_a_session_lives_30_days_at_most_unless_set(env: pytest.MonkeyPatch) -> None:
    assert load_settings().session_max_age == 30 * 86400
    env.setenv("BASTION_SESSION_MAX_AGE", "12h")
    env.setenv("BASTION_REFRESH_TTL", "12h")
    assert load_settings().session_max_age == 12 * 3600


@pytest.mark.parametrize("text", ["0", "abc", "-1d", "1.5d"])
def test_a_bad_session_max_age_is_a_config_error_naming_it(
    env: pytest.MonkeyPatch, text: str
) -> None:
    env.setenv("BASTION_SESSION_MAX_AGE", text)
    with pytest.raises(ConfigError, match=r"^BASTION_SESSION_MAX_AGE: "):
        load_settings()


def test_a_session_max_age_shorter_than_the_refresh_ttl_is_refused(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("BASTION_SESSION_MAX_AGE", "6d")  # BASTION_REFRESH_TTL is 7d
    with pytest.raises(ConfigError, match=r"BASTION_SESSION_MAX_AGE .* BASTION_REFRESH_TTL"):
        load_settings()


def test_the_hashers_longest_wait_is_5_seconds_unless_set(env: pytest.MonkeyPatch) -> None:
    assert load_settings().hash_max_wait == 5
    env.setenv("BASTION_HASH_MAX_WAIT", "2s")
    assert load_settings().hash_max_wait == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BASTION_ENV", "staging"),
        ("BASTION_TRUSTED_PROXIES", "not-an-ip"),
        ("BASTION_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("BASTION_MAX_BODY_BYTES", "abc"),
        ("BASTION_MAX_BODY_BYTES", "0"),
        ("BASTION_TOKEN_ISSUER", ""),
        ("BASTION_ARGON2_MEMORY_KIB", "-1"),
    ],
)
def test_other_bad_values_are_config_errors_naming_the_variable(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings()


def test_two_bad_variables_are_both_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_RATE_LIMIT_GLOBAL", "abc")
    env.setenv("BASTION_ACCESS_TTL", "soon")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BASTION_RATE_LIMIT_GLOBAL" in str(caught.value)
    assert "BASTION_ACCESS_TTL" in str(caught.value)


def test_production_accepts_two_different_32_byte_secrets(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("BASTION_ENV", "production")
    env.setenv("BASTION_ACCESS_SECRET", SECRET_A)
    env.setenv("BASTION_REFRESH_SECRET", "é" * 16)  # 16 characters, 32 bytes
    s = load_settings()
    assert s.production
    assert not (tmp_path / "var" / "secrets.json").exists()


def test_development_generates_secrets_once_into_a_0600_file(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = load_settings()
    path = tmp_path / "var" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.access_secret is not None
    assert first.refresh_secret is not None
    access, refresh = (
        first.access_secret.get_secret_value(),
        first.refresh_secret.get_secret_value(),
    )
    assert access != refresh
    assert len(access.encode()) >= 32
    assert len(refresh.encode()) >= 32
    stored = path.read_text()
    second = load_settings()
    assert second.access_secret is not None
    assert second.refresh_secret is not None
    assert second.access_secret.get_secret_value() == access
    assert second.refresh_secret.get_secret_value() == refresh
    assert path.read_text() == stored


def test_development_keeps_secrets_that_are_set(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_ACCESS_SECRET", SECRET_A)
    env.setenv("BASTION_REFRESH_SECRET", SECRET_B)
    s = load_settings()
    assert s.access_secret is not None
    assert s.access_secret.get_secret_value() == SECRET_A


def test_a_secrets_file_readable_by_others_is_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    load_settings()
    path = tmp_path / "var" / "secrets.json"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"secrets\.json"):
        load_settings()


@pytest.mark.parametrize(
    "content", ["", "not json", "[]", '{"access": "x"}', '{"access": 1, "refresh": 2}']
)
def test_a_damaged_secrets_file_is_a_config_error(
    env: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "var" / "secrets.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"secrets\.json"):
        load_settings()


def test_secrets_never_show_in_the_settings_repr(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_ACCESS_SECRET", SECRET_A)
    env.setenv("BASTION_REFRESH_SECRET", SECRET_B)
    s = load_settings()
    assert SECRET_A not in repr(s)
    assert SECRET_B not in str(s)
    assert SECRET_A not in json.dumps(s.model_dump(mode="json"))


def test_overrides_win_over_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_RATE_LIMIT_GLOBAL", "abc")
    s = load_settings(rate_limit_global="9/minute")
    assert isinstance(s, Settings)
    assert s.rate_limit_global == Rate(9, 60)


def test_the_hash_concurrency_default_works_without_an_affinity_mask(
    env: pytest.MonkeyPatch,
) -> None:
    """macOS and Windows have no os.sched_getaffinity: the core count is used instead."""
    env.delattr("os.sched_getaffinity", raising=False)
    env.setattr("os.cpu_count", lambda: 3)
    assert load_settings().hash_concurrency == 3
    env.setenv("BASTION_HASH_CONCURRENCY", "2")
    assert load_settings().hash_concurrency == 2


def test_the_database_pool_settings_are_read(env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.database_pool_min, s.database_pool_max, s.database_pgbouncer) == (2, 10, False)
    assert (s.database_statement_timeout, s.database_acquire_timeout) == (10, 10)
    assert s.database_connect_timeout == 5
    for name, value in {
        "BASTION_DATABASE_POOL_MIN": "0",
        "BASTION_DATABASE_POOL_MAX": "25",
        "BASTION_DATABASE_PGBOUNCER": "true",
        "BASTION_DATABASE_STATEMENT_TIMEOUT": "30",
        "BASTION_DATABASE_ACQUIRE_TIMEOUT": "2",
        "BASTION_DATABASE_CONNECT_TIMEOUT": "1m",
    }.items():
        env.setenv(name, value)
    s = load_settings()
    assert (s.database_pool_min, s.database_pool_max, s.database_pgbouncer) == (0, 25, True)
    assert (s.database_statement_timeout, s.database_acquire_timeout) == (30, 2)
    assert s.database_connect_timeout == 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BASTION_DATABASE_POOL_MIN", "-1"),
        ("BASTION_DATABASE_POOL_MAX", "0"),
        ("BASTION_DATABASE_POOL_MAX", "many"),
        ("BASTION_DATABASE_PGBOUNCER", "perhaps"),
        ("BASTION_DATABASE_STATEMENT_TIMEOUT", "0"),
        ("BASTION_DATABASE_ACQUIRE_TIMEOUT", "soon"),
        ("BASTION_DATABASE_CONNECT_TIMEOUT", "-5"),
    ],
)
def test_a_bad_database_pool_setting_is_a_config_error_naming_it(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings()


def test_a_pool_minimum_above_its_maximum_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("BASTION_DATABASE_POOL_MIN", "8")
    env.setenv("BASTION_DATABASE_POOL_MAX", "4")
    with pytest.raises(ConfigError, match=r"BASTION_DATABASE_POOL_MIN \(8\).*POOL_MAX \(4\)"):
        load_settings()


def test_allowed_hosts_and_the_public_origin_are_read_from_the_environment(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("BASTION_ALLOWED_HOSTS", " shop.example.com, *.example.com:8443 ,")
    env.setenv("BASTION_PUBLIC_ORIGIN", "HTTPS://Shop.Example.com:443/")
    s = load_settings()
    assert s.allowed_hosts == ["shop.example.com", "*.example.com:8443"]
    assert s.public_origin == "https://shop.example.com"
    env.setenv("BASTION_ALLOWED_HOSTS", "")
    env.delenv("BASTION_PUBLIC_ORIGIN")
    s = load_settings()
    assert (s.allowed_hosts, s.public_origin) == ([], None)
