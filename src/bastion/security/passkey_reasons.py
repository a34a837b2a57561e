"""The fixed reasons a passkey refusal gives its security event.

py_webauthn's messages quote what the client sent (an origin, a type), and a client's
text must never reach a security event: each message is mapped, by its fixed opening
words, to one of these reasons, and anything unrecognised to a generic one.
"""

from __future__ import annotations

from webauthn.helpers.exceptions import InvalidJSONStructure

from bastion.security.exceptions import SecurityError

__all__ = ["reason_for"]

_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("id and raw_id were not equivalent", "credential id mismatch"),
    ("Unexpected credential type", "not a public-key credential"),
    ("clientDataJSON was malformed", "malformed client data"),
    ("Unexpected client data type", "client data for another ceremony"),
    ("Client data challenge was not expected challenge", "wrong challenge"),
    ("Unexpected client data origin", "wrong origin"),
    ("Unexpected token_binding", "token binding refused"),
    ("attestationObject was malformed", "malformed attestation"),
    ("authenticatorData was malformed", "malformed authenticator data"),
    ("Unexpected RP ID hash", "wrong rp id"),
    ("User presence was required", "user not present"),
    ("User was not present", "user not present"),
    ("User verification is required", "user not verified"),
    ("Authenticator did not provide", "no attested credential"),
    ("Unsupported credential public key alg", "unsupported algorithm"),
    ("None attestation had unexpected attestation statement", "bad attestation statement"),
    ("Unsupported attestation type", "unsupported attestation"),
    ("Response sign count", "sign counter did not increase"),
    ("Could not verify authentication signature", "bad signature"),
)


def reason_for(exc: BaseException) -> str:
    """The event's reason for a failed verification (never the exception's text)."""
    if isinstance(exc, SecurityError):
        return exc.reason  # ours: fixed text already
    if isinstance(exc, InvalidJSONStructure):
        return "malformed credential"
    message = str(exc)
    for prefix, reason in _BY_PREFIX:
        if message.startswith(prefix):
            return reason
    return "credential not accepted"
