"""The context-specific words no password may lean on (ASVS 5.0 V6.1.2, V6.2.11).

A password that is weak once these words are taken out of it (in any case, or with
digits for letters) is refused at registration, at a password change and by
``bastion users create``: see SECURITY.md, "Passwords".
"""

from __future__ import annotations

__all__ = ["SERVICE_WORDS", "password_context"]

# The product, its parts and its roles: what an attacker tries first against this
# service. The account's own email and name are added per call.
SERVICE_WORDS = (
    "bastion",
    "storefront",
    "orders",
    "admin",
    "administrator",
)


def password_context(email: str, name: str) -> tuple[str, ...]:
    """The words a password for this account must not lean on."""
    return (email, name, *SERVICE_WORDS)
