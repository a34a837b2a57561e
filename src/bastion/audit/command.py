"""``bastion audit URL``: parse, announce, run, report; the exit status.

0 when no check failed, 1 when one did, 2 when the audit could not run (a bad URL,
profile or selection, a target that does not answer, a refused non-loopback target).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bastion.audit.engine import AuditError, AuditResult, plan, run_audit
from bastion.audit.profile import ProfileError, load_profile
from bastion.audit.registry import SelectionError, select
from bastion.audit.report import render
from bastion.audit.report.live import LiveTable, print_results
from bastion.audit.target import TargetError, parse_target

__all__ = ["EXIT_CANNOT_RUN", "EXIT_FAILED", "EXIT_PASSED", "audit_main"]

EXIT_PASSED, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


def _ids(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def _advise(console: Console, result: AuditResult, *, spread: bool) -> None:
    limited = result.limited
    if not limited:
        return
    console.print(
        "[yellow]The target's own limits kept these checks from a verdict:[/] "
        + ", ".join(c.id for c in limited)
    )
    if spread:
        console.print("Run them again later, or one at a time with --only.")
    else:
        console.print(
            "To judge them, audit a staging instance from the machine it runs on (on "
            "loopback the audit speaks from addresses of its own), or raise the per-client "
            "limits for the auditor's address while it runs, then audit again with --only."
        )


def audit_main(
    url: str,
    *,
    profile_path: Path | None,
    fmt: str,
    output: Path | None,
    only: str | None,
    skip: str | None,
    authorized: bool,
    console: Console,
) -> int:
    """Run the audit as the CLI does; returns the exit status."""
    try:
        target = parse_target(url, authorized=authorized)
        profile = load_profile(profile_path)
        checks = select(_ids(only), _ids(skip))
    except (TargetError, ProfileError, SelectionError) as exc:
        console.print(f"[bold red]cannot audit:[/] {escape(str(exc))}")
        return EXIT_CANNOT_RUN
    announced = plan(checks, profile)
    console.print(
        f"Auditing {escape(target.url)} ({escape(profile.name)}): {len(checks)} checks, "
        f"at most {announced.max_requests} requests"
        + (", from loopback addresses of its own." if target.spread else ".")
    )
    if announced.locking:
        console.print(
            f"It will lock out {escape(announced.accounts)}, in {', '.join(announced.locking)}."
        )
    try:
        if fmt == "table":
            with LiveTable(console, len(checks)) as table:
                result = asyncio.run(run_audit(target, profile, checks, observer=table))
        else:
            result = asyncio.run(run_audit(target, profile, checks))
    except (AuditError, ProfileError) as exc:
        console.print(f"[bold red]cannot audit:[/] {escape(str(exc))}")
        return EXIT_CANNOT_RUN
    if fmt == "table":
        print_results(console, result)
    if fmt != "table" or output is not None:
        text = render(result, "json" if fmt == "table" else fmt)
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                console.print(f"[bold red]cannot write {escape(str(output))}:[/] {exc.strerror}")
                return EXIT_CANNOT_RUN
        else:
            print(text, end="")  # the report itself: stdout, unstyled
    _advise(console, result, spread=target.spread)
    return EXIT_FAILED if result.failed else EXIT_PASSED
