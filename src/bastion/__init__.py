"""Bastion: a secure-by-default REST API and the ASGI security layer it is made of."""

__version__ = "0.1.0"
