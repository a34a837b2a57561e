"""Passkeys (WebAuthn) as a first factor, on py_webauthn.

Registration and authentication are each two steps: options for the browser (with a
signed, one-use state, :mod:`bastion.security.passkey_state`), then the browser's
answer verified against that state. Every check is py_webauthn's, with user
verification required: the challenge, the origin, the RP ID hash, the flags, the
signature and the sign counter (one that does not move forward is refused, unless the
authenticator keeps none: both zero). On top of them, an assertion's user handle must
name the account the credential was registered to.

Storage is the caller's: :meth:`Passkeys.verify_registration` returns what to store,
:meth:`Passkeys.verify_authentication` looks the credential up through the caller's
``lookup`` and returns the new counter, to be stored only if the old one is still
there (``UPDATE ... WHERE sign_count = old``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    generate_challenge,
    options_to_json,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bastion.security.passkey_reasons import reason_for
from bastion.security.passkey_state import PasskeyRefused, PasskeyState
from bastion.store import Store

__all__ = [
    "NewPasskey",
    "PasskeyConfig",
    "PasskeyRefused",
    "Passkeys",
    "StoredPasskey",
    "UsedPasskey",
]

MAX_CREDENTIAL_ID = 1023  # bytes (WebAuthn Level 3, 7.1 step 25)


@dataclass(frozen=True, slots=True)
class PasskeyConfig:
    """The relying party: ``rp_id`` a registrable domain (never an IP address),
    ``origin`` the exact origin the browser runs the ceremony on, whose host is
    ``rp_id`` or one of its subdomains (``https``, or ``http`` on localhost only)."""

    rp_id: str
    rp_name: str
    origin: str
    timeout_ms: int = 60000

    def __post_init__(self) -> None:
        if not self.rp_id or self.rp_id != self.rp_id.lower() or "/" in self.rp_id:
            raise ValueError("rp_id must be a lowercase host name")
        if ":" in self.rp_id or _is_ip(self.rp_id):
            raise ValueError("rp_id must be a domain name: an IP address is not a valid RP ID")
        if not self.rp_name.strip():
            raise ValueError("rp_name must not be empty")
        parts = urlsplit(self.origin)
        host = parts.hostname or ""
        if parts.scheme != "https" and not (parts.scheme == "http" and host == "localhost"):
            raise ValueError("origin must be https (http only on localhost)")
        if parts.path or parts.query or parts.fragment or parts.username:
            raise ValueError("origin must be scheme://host[:port] only")
        if host != self.rp_id and not host.endswith("." + self.rp_id):
            raise ValueError("origin's host must be rp_id or a subdomain of it")
        if not 1000 <= self.timeout_ms <= 300_000:
            raise ValueError("timeout_ms must be between 1000 and 300000 (the state's life)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class NewPasskey:
    """A verified registration, to store: ids and key in base64url."""

    credential_id: str
    public_key: str  # COSE
    sign_count: int
    transports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredPasskey:
    """A registered passkey as the caller's ``lookup`` finds it."""

    credential_id: str
    user_id: str
    public_key: str  # COSE, base64url
    sign_count: int


@dataclass(frozen=True, slots=True)
class UsedPasskey:
    """A verified assertion: who signed in, and the counter to store."""

    credential_id: str
    user_id: str
    new_sign_count: int


Lookup = Callable[[str], Awaitable[StoredPasskey | None]]


class Passkeys:
    """WebAuthn ceremonies for one relying party over a shared :class:`Store` (each
    state works once on every instance). ``key``: at least 32 bytes, derived for the
    states alone. Every refusal is :class:`PasskeyRefused`; a store that cannot answer
    raises :class:`~bastion.store.StoreUnavailable` (fail closed)."""

    def __init__(self, store: Store, config: PasskeyConfig, *, key: bytes) -> None:
        self.config = config
        self._state = PasskeyState(store, key=key)

    def registration_options(
        self, *, user_id: str, user_name: str, display_name: str, exclude: Sequence[str]
    ) -> tuple[dict[str, Any], str]:
        """Options for ``navigator.credentials.create()`` (a discoverable credential,
        user verification required, none of ``exclude`` again) and their state."""
        handle = user_id.encode()
        if not 1 <= len(handle) <= 64:
            raise ValueError("a user handle is 1 to 64 bytes")
        challenge = generate_challenge()
        options = generate_registration_options(
            rp_id=self.config.rp_id,
            rp_name=self.config.rp_name,
            user_id=handle,
            user_name=user_name,
            user_display_name=display_name,
            challenge=challenge,
            timeout=self.config.timeout_ms,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in exclude
            ],
        )
        state = self._state.issue("register", bytes_to_base64url(challenge), user_id=user_id)
        return _json_ready(options), state

    async def verify_registration(
        self, state: str, credential: dict[str, Any], *, user_id: str
    ) -> NewPasskey:
        """The browser's ``PublicKeyCredential.toJSON()`` of a registration, checked
        against ``state`` (which must have been issued to ``user_id``)."""
        claims = self._state.open(state, "register")
        if claims.get("sub") != user_id:
            raise PasskeyRefused("state issued to another user")
        await self._state.spend(claims)
        try:
            parsed = parse_registration_credential_json(_as_dict(credential))
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=base64url_to_bytes(claims["challenge"]),
                expected_rp_id=self.config.rp_id,
                expected_origin=self.config.origin,
                require_user_verification=True,
            )
        except Exception as exc:
            raise PasskeyRefused(reason_for(exc)) from None
        if len(verified.credential_id) > MAX_CREDENTIAL_ID:
            raise PasskeyRefused("credential id too long")
        transports = tuple(t.value for t in parsed.response.transports or ())
        return NewPasskey(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=transports,
        )

    def authentication_options(self) -> tuple[dict[str, Any], str]:
        """Options for ``navigator.credentials.get()``: any discoverable credential of
        this RP (empty allowCredentials), user verification required."""
        challenge = generate_challenge()
        options = generate_authentication_options(
            rp_id=self.config.rp_id,
            challenge=challenge,
            timeout=self.config.timeout_ms,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        state = self._state.issue("login", bytes_to_base64url(challenge))
        return _json_ready(options), state

    async def verify_authentication(
        self, state: str, credential: dict[str, Any], *, lookup: Lookup
    ) -> UsedPasskey:
        """The browser's ``toJSON()`` of an assertion, checked against ``state`` and
        the passkey ``lookup`` finds under its credential id."""
        claims = self._state.open(state, "login")
        await self._state.spend(claims)
        try:
            parsed = parse_authentication_credential_json(_as_dict(credential))
        except Exception as exc:
            raise PasskeyRefused(reason_for(exc)) from None
        if bytes_to_base64url(parsed.raw_id) != parsed.id:
            raise PasskeyRefused("credential id mismatch")
        stored = await lookup(parsed.id)
        if stored is None:
            raise PasskeyRefused("unknown passkey")
        handle = parsed.response.user_handle
        if handle is None:
            raise PasskeyRefused("no user handle")
        if not hmac.compare_digest(handle, stored.user_id.encode()):
            raise PasskeyRefused("user handle does not match the passkey's account")
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=base64url_to_bytes(claims["challenge"]),
                expected_rp_id=self.config.rp_id,
                expected_origin=self.config.origin,
                credential_public_key=base64url_to_bytes(stored.public_key),
                credential_current_sign_count=stored.sign_count,
                require_user_verification=True,
            )
        except Exception as exc:
            raise PasskeyRefused(reason_for(exc)) from None
        return UsedPasskey(stored.credential_id, stored.user_id, verified.new_sign_count)


def _json_ready(options: Any) -> dict[str, Any]:
    # Through text: py_webauthn's dict form keeps enums (algorithms), its JSON does not.
    ready: dict[str, Any] = json.loads(options_to_json(options))
    return ready


def _as_dict(credential: object) -> dict[str, Any]:
    if not isinstance(credential, dict):
        raise PasskeyRefused("malformed credential")
    return credential
