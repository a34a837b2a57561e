"""The table people watch: a progress bar and the check being run, then one line per
check with its verdict, what was sent and seen, and the fix."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion.audit.engine import AuditResult
from bastion.audit.registry import Check
from bastion.audit.verdicts import CheckOutcome

__all__ = ["LiveTable", "print_results"]

STYLE = {  # nosec B105: verdicts, not passwords
    "pass": "green",
    "fail": "bold red",
    "not-applicable": "dim",
    "inconclusive": "yellow",
}


def _table() -> Table:
    table = Table(expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("requests", justify="right")
    table.add_column("reason")
    return table


class LiveTable:
    """An :class:`~bastion.audit.engine.Observer` drawing the audit as it runs."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.table = _table()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("starting", total=total)
        self.live = Live(Group(self.table, self.progress), console=console, refresh_per_second=8)

    def __enter__(self) -> LiveTable:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live.is_started:
            self.progress.update(self.task, description="done")
            self.live.stop()

    def started(self, check: Check, index: int) -> None:
        # Drawn from the first check on: nothing to show while the target is probed.
        if not self.live.is_started:
            self.live.start()
        self.progress.update(self.task, description=f"running {check.id}")

    def finished(self, check: Check, outcome: CheckOutcome) -> None:
        style = STYLE[outcome.verdict]
        self.table.add_row(
            check.id,
            f"[{style}]{outcome.verdict}[/]",
            str(outcome.requests),
            escape(outcome.reason),
        )
        self.progress.advance(self.task)


def print_results(console: Console, result: AuditResult) -> None:
    """One line per check: verdict, id, what was sent and seen, and the fix."""
    for check, outcome in result.outcomes:
        style = STYLE[outcome.verdict]
        console.print(f"[{style}]{outcome.verdict:>14}[/] {check.id}: {escape(outcome.reason)}")
        if outcome.verdict in ("fail", "inconclusive"):
            for line in outcome.evidence:
                console.print(f"{'':>16}[dim]{escape(line)}[/]")
        if outcome.verdict == "fail":
            console.print(f"{'':>16}fix: {escape(check.fix)}")
    summary = result.summary()
    console.print(
        ", ".join(f"{summary[v]} {v}" for v in ("pass", "fail", "not-applicable", "inconclusive"))
        + f"; {summary['requests']} requests."
    )
