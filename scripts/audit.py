#!/usr/bin/env python3
"""``make audit``: pip-audit over the locked dependencies, saying plainly what it did.

pip-audit asks an advisory service (PyPI's JSON API by default) about each locked
package. Three outcomes, and this script never blurs them:

- a known vulnerability that the allowlist does not accept: listed, exit 1 (the build
  fails);
- packages audited and none vulnerable: "no known vulnerabilities in N packages", with
  any package that could not be audited named, exit 0;
- the service could not be reached (no route, no name resolution, a time-out, or it
  answered about no package at all): "NOTHING WAS AUDITED" and every package not
  checked, exit 0. pip-audit itself reports "No known vulnerabilities found" when every
  package was skipped; that sentence is never repeated here.

Anything else pip-audit fails on (a bad flag, a broken requirements file) exits 2.

The allowlist (``audit-allowlist.txt``) holds one accepted advisory per line, ``ID
reason``; a line without a reason is refused. Each ID goes to pip-audit as
``--ignore-vuln``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What a failure to reach the service looks like in pip-audit's (or requests') words.
NETWORK_ERRORS = re.compile(
    r"ConnectionError|Connection error|NameResolutionError|Failed to resolve|"
    r"Temporary failure in name resolution|Name or service not known|Max retries exceeded|"
    r"Network is unreachable|No route to host|Connection refused|timed out|ConnectTimeout|"
    r"ReadTimeout|Could not connect|SSLError|ProxyError",
)
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")

OK, VULNERABLE, BROKEN = 0, 1, 2


class AuditError(Exception):
    """Something other than the network stopped the audit (exit 2)."""


@dataclass(frozen=True)
class Accepted:
    vuln_id: str
    reason: str


def read_allowlist(path: Path) -> list[Accepted]:
    """``ID reason`` per line; blank lines and ``#`` comments are skipped."""
    if not path.exists():
        return []
    accepted = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise AuditError(f"{path}:{number}: {vuln_id} has no reason; write 'ID reason'")
        accepted.append(Accepted(vuln_id, reason.strip()))
    return accepted


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_packages(requirements: Path) -> list[str]:
    """``name==version`` of every package in a requirements file (markers ignored)."""
    out = []
    for line in requirements.read_text().splitlines():
        match = REQUIREMENT.match(line.strip())
        if match:
            out.append(f"{match.group(1)}=={match.group(2)}")
    return out


def export_requirements(uv: str, target: Path) -> None:
    """The lock file as a hashed requirements file, every group and extra included."""
    command = [uv, "export", "--frozen", "--format", "requirements-txt", "--no-emit-project"]
    command += ["--all-groups", "--all-extras", "--no-header", "--output-file", str(target)]
    # The tools are named by the operator (make), never by input the audit reads.
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise AuditError(f"uv export failed:\n{result.stderr.strip()}")


def nothing_audited(why: str, packages: Sequence[str]) -> int:
    print(f"pip-audit: advisory service unreachable ({why}): NOTHING WAS AUDITED")
    print(f"pip-audit: {len(packages)} packages not checked: {', '.join(packages)}")
    return OK


def report(data: dict[str, Any], packages: Sequence[str], accepted: Sequence[Accepted]) -> int:
    dependencies = data.get("dependencies")
    if not isinstance(dependencies, list):
        raise AuditError("pip-audit's JSON report has no list of dependencies")
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    if vulnerable:
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                aliases = ", ".join(vuln.get("aliases") or [])
                fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
                print(
                    f"VULNERABLE {dep['name']}=={dep.get('version', '?')}: {vuln['id']}"
                    + (f" ({aliases})" if aliases else "")
                    + f"; fixed in: {fixes}"
                )
        print(
            f"pip-audit: {sum(len(d['vulns']) for d in vulnerable)} known vulnerabilities in "
            f"{len(vulnerable)} packages; upgrade, or accept each in audit-allowlist.txt "
            "with a reason"
        )
        return VULNERABLE
    if not audited:
        reason = str(skipped[0]["skip_reason"]) if skipped else "no package was looked up"
        pins = {_canonical(p.partition("==")[0]): p for p in packages}
        named = [pins.get(_canonical(d["name"]), d["name"]) for d in skipped] or list(packages)
        return nothing_audited(f"every package skipped: {reason}", named)
    allowed = f"; {len(accepted)} advisories accepted in the allowlist" if accepted else ""
    print(f"pip-audit: no known vulnerabilities in the {len(audited)} packages audited{allowed}")
    if skipped:
        print(
            f"pip-audit: {len(skipped)} packages NOT audited: "
            + ", ".join(f"{d['name']} ({d['skip_reason']})" for d in skipped)
        )
    return OK


def audit(
    requirements: Path,
    allowlist: Path,
    *,
    pip_audit: str,
    timeout: float,
    deadline: float,
) -> int:
    accepted = read_allowlist(allowlist)
    packages = locked_packages(requirements)
    command = [pip_audit, "--requirement", str(requirements), "--disable-pip"]
    command += ["--format", "json", "--progress-spinner", "off", "--timeout", str(timeout)]
    for item in accepted:
        command += ["--ignore-vuln", item.vuln_id]
    try:
        result = subprocess.run(  # noqa: S603 (allowlist IDs are list items, no shell)
            command, capture_output=True, text=True, timeout=deadline, check=False
        )
    except subprocess.TimeoutExpired:
        return nothing_audited(f"no answer within {deadline:g} s", packages)
    except FileNotFoundError:
        raise AuditError(f"{pip_audit} not found: run `make install`") from None
    try:
        data = json.loads(result.stdout)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return report(data, packages, accepted)
    match = NETWORK_ERRORS.search(result.stderr)
    if match:
        return nothing_audited(match.group(0), packages)
    raise AuditError(f"pip-audit failed (exit {result.returncode}):\n{result.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, help="default: exported from uv.lock")
    parser.add_argument("--allowlist", type=Path, default=ROOT / "audit-allowlist.txt")
    parser.add_argument("--pip-audit", default=str(Path(sys.executable).parent / "pip-audit"))
    parser.add_argument("--uv", default="uv")
    parser.add_argument("--timeout", type=float, default=10, help="per request, seconds")
    parser.add_argument("--deadline", type=float, default=120, help="whole audit, seconds")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            requirements = args.requirements
            if requirements is None:
                requirements = Path(tmp) / "requirements.txt"
                export_requirements(args.uv, requirements)
            return audit(
                requirements,
                args.allowlist,
                pip_audit=args.pip_audit,
                timeout=args.timeout,
                deadline=args.deadline,
            )
    except AuditError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return BROKEN


if __name__ == "__main__":
    sys.exit(main())
