"""One key per use, derived from a server secret: never the raw secret itself."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.security.secret import Secret

__all__ = ["derive_key"]


def derive_key(secret: Secret, label: bytes, *, length: int = 32) -> bytes:
    """``HKDF-SHA256(secret, salt=None, info=label)``: a key for one use only, so that
    a key leaked or misused in one place (a digest, a cipher, a signature) says nothing
    of the secret or of the keys derived for the other uses. ``label`` names the use
    (``b"bastion totp seal"``) and must differ between uses."""
    if not label:
        raise ValueError("a derived key needs a label naming its use")
    if not 16 <= length <= 64:
        raise ValueError("a derived key is 16 to 64 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label)
    return hkdf.derive(secret.reveal())
