"""A software WebAuthn authenticator for tests: EC P-256 keys (ES256), attestation
"none", and the JSON a browser's ``PublicKeyCredential.toJSON()`` gives (base64url
fields).

Byte layouts (WebAuthn Level 3, 6.1): authenticator data is ``rpIdHash (32) | flags (1)
| signCount (4, big-endian) [| attested credential data]``, the attested credential data
``aaguid (16) | credentialIdLength (2) | credentialId | COSE key``; an assertion's
signature is ECDSA-SHA256 over ``authenticatorData || SHA-256(clientDataJSON)``.

It lies when asked to: another origin or RP ID, the UV (or UP) flag off, a chosen
counter (one that goes backwards), a signature by another key, another user handle,
another challenge.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cose_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The COSE_Key of the public half: EC2 (1), ES256 (-7), P-256 (1), x, y."""
    numbers = key.public_key().public_numbers()
    return cbor2.dumps(
        {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
    )


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    user_handle: bytes
    counter: int


class Authenticator:
    """One authenticator holding (after :meth:`register`) one discoverable credential.
    ``origin`` and ``rp_id`` are what an honest browser on that origin would say."""

    def __init__(self, *, origin: str, rp_id: str, counter: int = 0) -> None:
        self.origin = origin
        self.rp_id = rp_id
        self.start_counter = counter
        self.credential: Credential | None = None

    def clone(self) -> Authenticator:
        """A copy of this authenticator, key and counter included (a cloned key)."""
        twin = copy.copy(self)
        twin.credential = copy.copy(self.credential)
        return twin

    @property
    def credential_id(self) -> str:
        assert self.credential is not None
        return b64url(self.credential.id)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def _auth_data(self, rp_id: str | None, flags: int, counter: int, attested: bytes) -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", counter) + attested

    def register(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool = True,
        up: bool = True,
        challenge: str | None = None,
        kind: str = "webauthn.create",
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """A new credential for ``options`` (the server's creation options), as the
        browser's ``toJSON()`` of it."""
        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = credential_id if credential_id is not None else os.urandom(32)
        handle = unb64url(options["user"]["id"])
        self.credential = Credential(cred_id, key, handle, self.start_counter)
        attested = bytes(16) + struct.pack(">H", len(cred_id)) + cred_id + cose_key(key)
        flags = (UP if up else 0) | (UV if uv else 0) | AT
        auth_data = self._auth_data(rp_id, flags, self.start_counter, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data(kind, challenge or options["challenge"], origin)
        return {
            "id": b64url(cred_id),
            "rawId": b64url(cred_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def assertion(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool = True,
        counter: int | None = None,
        sign_with: ec.EllipticCurvePrivateKey | None = None,
        user_handle: bytes | None = None,
        challenge: str | None = None,
        kind: str = "webauthn.get",
    ) -> dict[str, Any]:
        """An assertion for ``options`` (the server's request options) by the
        credential, as the browser's ``toJSON()`` of it. The counter moves forward by
        one unless ``counter`` says what to report (and keep)."""
        cred = self.credential
        assert cred is not None, "register first"
        cred.counter = cred.counter + 1 if counter is None else counter
        auth_data = self._auth_data(rp_id, UP | (UV if uv else 0), cred.counter, b"")
        client_data = self._client_data(kind, challenge or options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = (sign_with or cred.key).sign(signed, ec.ECDSA(hashes.SHA256()))
        handle = cred.user_handle if user_handle is None else user_handle
        return {
            "id": b64url(cred.id),
            "rawId": b64url(cred.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
