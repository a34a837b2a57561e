"""The catalogue: importing this package registers every check. :data:`ORDER` is the
order they run and are reported in (a check missing from it runs last)."""

from bastion.audit.checks import (
    accounts,
    authz,
    graphql,
    headers,
    inputs,
    lockout,
    ratelimits,
    sessions,
    tokens,
)

__all__ = [
    "ORDER",
    "accounts",
    "authz",
    "graphql",
    "headers",
    "inputs",
    "lockout",
    "ratelimits",
    "sessions",
    "tokens",
]

ORDER = (
    "tokens.algorithm",
    "tokens.storage",
    "tokens.lifetime",
    "tokens.type-separation",
    "tokens.no-store",
    "refresh.rotation",
    "refresh.race",
    "refresh.sessions-independent",
    "sessions.logout",
    "headers.security",
    "errors.problem-details",
    "ratelimit.global",
    "ratelimit.auth",
    "ratelimit.burst",
    "client-ip.spoofing",
    "lockout.account",
    "lockout.normalisation",
    "lockout.successes",
    "lockout.denial-of-service",
    "auth.enumeration",
    "passwords.policy",
    "authz.object-level",
    "authz.property-level",
    "authz.mass-assignment",
    "authz.function-level",
    "input.validation",
    "input.injection",
    "resources.limits",
    "graphql.limits",
)
