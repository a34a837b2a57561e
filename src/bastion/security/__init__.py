"""The reusable security layer: pure ASGI middleware and plain async functions.

Nothing in this package imports FastAPI, the database or the service's settings, so any
ASGI application (Starlette, FastAPI, Litestar) can use it on its own.
"""
