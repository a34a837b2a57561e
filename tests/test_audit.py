"""``make audit`` (scripts/audit.py) with a fake pip-audit: a known vulnerability fails
the build, a clean audit passes and says how much it audited, and an unreachable
advisory service passes the build but says plainly that NOTHING WAS AUDITED, naming
every package, and never that there are no known vulnerabilities."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "audit.py"
PACKAGES = {"fastapi": "0.165.0", "jinja2": "3.1.2", "pyjwt": "2.15.1"}
REQUIREMENTS = (
    "".join(
        f"{name}=={version} \\\n    --hash=sha256:{'0' * 64}\n"
        for name, version in PACKAGES.items()
    )
    + "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:"
    + "1" * 64
    + "\n"
)
NETWORK_DOWN = (
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): "
    "Max retries exceeded with url: /pypi/fastapi/0.165.0/json (Caused by "
    "NameResolutionError(\"Failed to resolve 'pypi.org'\"))"
)
VULN = {
    "id": "PYSEC-2024-0001",
    "fix_versions": ["3.1.4"],
    "aliases": ["CVE-2024-0001"],
    "description": "template sandbox escape",
}


def report(vulnerable: dict[str, list[dict[str, Any]]] | None = None, skipped: bool = False) -> str:
    deps: list[dict[str, Any]] = []
    for name, version in PACKAGES.items():
        if skipped:
            reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
            deps.append({"name": name, "skip_reason": reason})
        else:
            deps.append(
                {"name": name, "version": version, "vulns": (vulnerable or {}).get(name, [])}
            )
    return json.dumps({"dependencies": deps, "fixes": []})


def run_audit(
    tmp_path: Path,
    *,
    stdout: str = "",
    stderr: str = "",
    code: int = 0,
    sleep: float = 0,
    allowlist: str = "",
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the audit with a pip-audit that prints ``stdout``/``stderr`` and exits ``code``;
    also returns the arguments the fake was called with."""
    calls = tmp_path / "calls.json"
    fake = tmp_path / "pip-audit"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, sys, time
            json.dump(sys.argv[1:], open({str(calls)!r}, "w"))
            time.sleep({sleep!r})
            sys.stdout.write({stdout!r})
            sys.stderr.write({stderr!r})
            sys.exit({code!r})
            """
        )
    )
    fake.chmod(0o755)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    allowed = tmp_path / "audit-allowlist.txt"
    allowed.write_text(allowlist)
    command = [sys.executable, str(SCRIPT), "--requirements", str(requirements)]
    command += ["--allowlist", str(allowed), "--pip-audit", str(fake), *extra]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    argv = json.loads(calls.read_text()) if calls.exists() else []
    return result, argv


UNREACHABLE = [
    pytest.param({"stderr": NETWORK_DOWN, "code": 1}, id="no-route-to-the-service"),
    # What this build machine really sees: PyPI answers its simple index but not its
    # JSON API, so pip-audit skips every package and calls that "No known vulnerabilities".
    pytest.param(
        {"stdout": report(skipped=True), "stderr": "No known vulnerabilities found\n"},
        id="every-package-skipped",
    ),
    pytest.param({"sleep": 5.0, "extra": ("--deadline", "0.5")}, id="no-answer-in-time"),
]


@pytest.mark.parametrize("fake", UNREACHABLE)
def test_an_unreachable_advisory_service_says_nothing_was_audited_and_passes(
    tmp_path: Path, fake: dict[str, Any]
) -> None:
    result, _ = run_audit(tmp_path, **fake)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "NOTHING WAS AUDITED" in said
    for name, version in PACKAGES.items():
        assert f"{name}=={version}" in said
    assert "no known vulnerabilities" not in said.lower()


def test_a_clean_audit_passes_and_says_how_many_packages_it_audited(tmp_path: Path) -> None:
    result, argv = run_audit(tmp_path, stdout=report())
    assert result.returncode == 0, result.stderr
    assert "no known vulnerabilities in the 3 packages audited" in result.stdout
    assert "NOTHING WAS AUDITED" not in result.stdout
    # pip-audit gets the hashed lock export, never a resolver, and reports as JSON.
    assert argv[argv.index("--format") + 1] == "json"
    assert "--disable-pip" in argv


def test_packages_that_could_not_be_audited_are_named_beside_a_clean_result(
    tmp_path: Path,
) -> None:
    data = json.loads(report())
    data["dependencies"][0] = {"name": "fastapi", "skip_reason": "Dependency not found on PyPI"}
    result, _ = run_audit(tmp_path, stdout=json.dumps(data))
    assert result.returncode == 0, result.stderr
    assert "2 packages audited" in result.stdout
    assert "1 packages NOT audited: fastapi" in result.stdout


def test_a_known_vulnerability_fails_the_build_naming_package_advisory_and_fix(
    tmp_path: Path,
) -> None:
    result, _ = run_audit(tmp_path, stdout=report({"jinja2": [VULN]}), code=1)
    assert result.returncode == 1
    assert "VULNERABLE jinja2==3.1.2: PYSEC-2024-0001 (CVE-2024-0001); fixed in: 3.1.4" in (
        result.stdout
    )
    assert "no known vulnerabilities" not in result.stdout.lower()


def test_an_accepted_advisory_is_passed_to_pip_audit_with_its_reason_required(
    tmp_path: Path,
) -> None:
    allowlist = "# reviewed\nPYSEC-2024-0001 jinja2 renders no untrusted template here\n"
    result, argv = run_audit(tmp_path, stdout=report(), allowlist=allowlist)
    assert result.returncode == 0, result.stderr
    assert argv[argv.index("--ignore-vuln") + 1] == "PYSEC-2024-0001"
    assert "1 advisories accepted in the allowlist" in result.stdout


def test_an_allowlist_line_without_a_reason_fails_the_build(tmp_path: Path) -> None:
    result, argv = run_audit(tmp_path, stdout=report(), allowlist="PYSEC-2024-0001\n")
    assert result.returncode == 2
    assert "PYSEC-2024-0001 has no reason" in result.stderr
    assert argv == []  # refused before pip-audit ran


def test_pip_audit_failing_for_another_reason_fails_the_build(tmp_path: Path) -> None:
    result, _ = run_audit(tmp_path, stderr="pip-audit: error: unrecognized arguments\n", code=2)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert "NOTHING WAS AUDITED" not in result.stdout
