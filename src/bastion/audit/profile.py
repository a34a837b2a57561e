"""The audit profile: what the audited API looks like.

With no profile file the audit assumes the contract of Bastion (``shared/API.md``):
:data:`DEFAULT_PROFILE`. A TOML profile (:func:`load_profile`) overrides any part of it
for an API of another shape; every field it leaves out keeps the contract's value.
A wrong profile raises :class:`ProfileError`, whose message names the field.

Strings in an operation's ``path`` and ``body`` may hold placeholders: ``{email}``,
``{password}``, ``{new_password}``, ``{name}``, ``{id}`` (the object's id) and the name of
every ``[fixtures]`` entry (a value read from the target before the checks start).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bastion.security import BastionError
from bastion.security.limits import Rate, parse_duration, parse_rate

__all__ = [
    "DEFAULT_PROFILE",
    "Account",
    "Fixture",
    "Limits",
    "Operation",
    "Profile",
    "ProfileError",
    "load_profile",
    "parse_profile",
]

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
BUILTIN_PLACEHOLDERS = frozenset({"email", "password", "new_password", "name", "id"})
ABSENTABLE = frozenset(
    {
        "auth.register",
        "auth.refresh",
        "auth.logout",
        "auth.logout_all",
        "auth.change_password",
        "objects",
        "admin",
        "openapi",
        "graphql",
    }
)


class ProfileError(BastionError):
    """The profile (or the OpenAPI document it names) cannot be used; the message names
    the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class Operation(_Model):
    """One HTTP operation; ``body`` is JSON (placeholders allowed in its strings)."""

    method: Method
    path: str = Field(pattern=r"^/")
    body: Any = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def _op(method: Method, path: str, body: Any = None) -> Operation:
    return Operation(method=method, path=path, body=body)


class Account(_Model):
    """A test account the profile provides (for an API without registration)."""

    email: str = Field(min_length=1)
    password: str = Field(min_length=1)


class Fixture(_Model):
    """A value read before the checks: GET ``path`` and take the JSON ``pointer``."""

    path: str = Field(pattern=r"^/")
    pointer: str = Field(pattern=r"^/")


class Limits(_Model):
    """The limits the target promises (what the rate-limit and lockout checks expect)."""

    # Requests per client on the API, failed auth attempts per client, failures per
    # account before lockout.
    global_: str = Field(default="100/15minutes", alias="global")
    auth: str = "10/hour"
    lockout: str = "5/15minutes"
    access_token_lifetime: str = "15m"  # noqa: S105  (a duration, not a password)
    password_min_length: int = Field(default=12, ge=1)
    password_max_length: int = Field(default=128, ge=1)
    max_body_bytes: int = Field(default=10240, ge=1)
    page_limit: int = Field(default=100, ge=1)

    @field_validator("global_", "auth", "lockout")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)  # raises ValueError with the expected syntax
        return value

    @field_validator("access_token_lifetime")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def global_rate(self) -> Rate:
        return parse_rate(self.global_)

    @property
    def auth_rate(self) -> Rate:
        return parse_rate(self.auth)

    @property
    def lockout_rate(self) -> Rate:
        return parse_rate(self.lockout)

    @property
    def access_ttl(self) -> int:
        return parse_duration(self.access_token_lifetime)


_REGISTER = _op(
    "POST",
    "/api/auth/register",
    {"email": "{email}", "password": "{password}", "name": "{name}"},  # nosec B105: placeholders
)
_CREATE_ORDER = _op(
    "POST",
    "/api/orders",
    {
        "items": [{"productId": "{product_id}", "quantity": 1}],
        "shippingAddress": {
            "line1": "1 Audit Street",
            "city": "London",
            "postcode": "SW1A 1AA",
            "country": "GB",
        },
    },
)


class Auth(_Model):
    """The authentication operations. ``token_pointer`` is where the access token is in
    the login (and refresh) answer; ``refresh_cookie`` the refresh token's cookie (empty:
    the HttpOnly cookie of the login answer whose value is not the device cookie's)."""

    registration: Operation = Field(default=_REGISTER, alias="register")
    login: Operation = _op(
        "POST",
        "/api/auth/login",
        {"email": "{email}", "password": "{password}"},  # nosec B105: placeholders
    )
    token_pointer: str = Field(default="/accessToken", pattern=r"^/")
    refresh: Operation = _op("POST", "/api/auth/refresh")
    refresh_cookie: str = "__Secure-refreshToken"
    logout: Operation = _op("POST", "/api/auth/logout")
    logout_all: Operation = _op("POST", "/api/auth/logout-all")
    change_password: Operation = _op(
        "POST",
        "/api/users/me/password",
        {"currentPassword": "{password}", "newPassword": "{new_password}"},
    )
    me: Operation = _op("GET", "/api/users/me")


class Objects(_Model):
    """Objects a user owns: how to create one, where its id is in the answer, and every
    operation that takes its id (``{id}`` in the path)."""

    create: Operation = _CREATE_ORDER
    id_pointer: str = Field(default="/id", pattern=r"^/")
    listing: Operation = Field(default=_op("GET", "/api/orders"), alias="list")
    operations: list[Operation] = [
        _op("GET", "/api/orders/{id}"),
        _op("POST", "/api/orders/{id}/cancel"),
    ]
    # A write to the object, with fields that only the server may set (mass assignment).
    update: Operation = _op("PATCH", "/api/users/me", {"name": "Audit"})


class Profile(_Model):
    """Everything the audit needs to know about a target. See ``docs/audit.md``."""

    name: str = "shared/API.md contract"
    auth: Auth = Auth()
    accounts: list[Account] = []
    fixtures: dict[str, Fixture] = {
        "product_id": Fixture(path="/api/products", pointer="/items/0/id")
    }
    objects: Objects = Objects()
    admin: list[Operation] = [
        _op("GET", "/api/admin/users"),
        _op("GET", "/api/admin/security-events"),
    ]
    limits: Limits = Limits()
    # HTML pages whose security headers are checked beside the API's.
    pages: list[str] = ["/"]
    # The OpenAPI document: a path on the target ("/openapi.json"), a URL, or a file
    # ("file:/abs/path", or a path relative to the profile's folder).
    openapi: str = "/openapi.json"
    graphql: str = "/api/graphql"
    development: bool = False
    # Operations the API does not have: "auth.register", "auth.logout_all", "graphql", ...
    absent: list[str] = []

    @field_validator("absent")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for name in value:
            known = ABSENTABLE
            if name not in known:
                raise ValueError(f"{name!r} is not an operation; known: {', '.join(sorted(known))}")
        return value

    def has(self, name: str) -> bool:
        """Whether the target has this operation (not listed in ``absent``)."""
        return name not in self.absent

    def placeholders(self) -> set[str]:
        return set(BUILTIN_PLACEHOLDERS | set(self.fixtures))


def _used_placeholders(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, m) for m in PLACEHOLDER.findall(value)]
    if isinstance(value, dict):
        return [u for k, v in value.items() for u in _used_placeholders(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [u for i, v in enumerate(value) for u in _used_placeholders(v, f"{where}[{i}]")]
    return []


def _check_placeholders(profile: Profile) -> None:
    known = profile.placeholders()
    dumped = profile.model_dump(by_alias=True)
    for where, name in _used_placeholders(dumped, "profile"):
        if name not in known:
            raise ProfileError(
                f"{where.removeprefix('profile.')}: unknown placeholder {{{name}}}; "
                f"known: {', '.join(sorted(known))}"
            )


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_profile(data: dict[str, Any], *, source: str = "profile") -> Profile:
    """A :class:`Profile` from already-parsed TOML. Raises :class:`ProfileError`."""
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # The field and the reason, never pydantic's quoting of the input (a password).
        raise ProfileError(f"{source}: {_field(first['loc'])}: {first['msg']}") from None
    try:
        _check_placeholders(profile)
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None
    return profile


def load_profile(path: Path | None) -> Profile:
    """The profile in ``path`` (TOML), or the contract's with no path.
    Raises :class:`ProfileError`."""
    if path is None:
        return DEFAULT_PROFILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: is not valid TOML ({exc})") from None
    profile = parse_profile(data, source=str(path))
    where = profile.openapi
    if where and not where.startswith(("/", "http://", "https://", "file:")):
        # A file named relative to the profile's own folder.
        profile = profile.model_copy(update={"openapi": f"file:{(path.parent / where).resolve()}"})
    return profile


DEFAULT_PROFILE = Profile()
