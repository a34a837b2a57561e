"""The reusable security layer: pure ASGI middleware and plain async functions.

Nothing in this package imports FastAPI, the database or the service's settings, so any
ASGI application (Starlette, FastAPI, Litestar) can use it on its own.
"""

# -- refresh-token sessions ------------------------------------------------------------
from bastion.security.session_store import MemorySessionStore as MemorySessionStore
from bastion.security.session_store import Session as Session
from bastion.security.session_store import SessionStore as SessionStore
from bastion.security.session_store import SqlSessionStore as SqlSessionStore
from bastion.security.sessions import IssuedTokens as IssuedTokens
from bastion.security.sessions import RefreshRefused as RefreshRefused
from bastion.security.sessions import RefreshReused as RefreshReused
from bastion.security.sessions import RefreshSessions as RefreshSessions
from bastion.security.sessions import SessionConfig as SessionConfig

# Added to the names listed above, if any are.
__all__ = [
    *globals().get("__all__", []),
    "IssuedTokens",
    "MemorySessionStore",
    "RefreshRefused",
    "RefreshReused",
    "RefreshSessions",
    "Session",
    "SessionConfig",
    "SessionStore",
    "SqlSessionStore",
]
