"""The catalogue: importing this package registers every check, in catalogue order."""

from bastion.audit.checks import tokens  # noqa: F401
