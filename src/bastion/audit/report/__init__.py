"""The audit's reports: a live table for people, JSON, SARIF, JUnit and Markdown for
machines and pull requests. Every format carries the same results."""

from bastion.audit.report.formats import FORMATS, render

__all__ = ["FORMATS", "render"]
