"""The FastAPI routers of the HTTP contract (``shared/API.md``)."""
