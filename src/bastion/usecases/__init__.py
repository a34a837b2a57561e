"""What the service does, apart from HTTP: the use cases its routes and its CLI call.

Nothing here knows FastAPI or a request: each use case takes plain values and the
pieces it needs, and raises :class:`~bastion.security.BastionError` subclasses that the
caller turns into its own answer.
"""
