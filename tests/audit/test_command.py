"""``bastion audit`` as a user runs it: the safety gate, clear errors with exit status 2,
the report formats, and a live ``bastion serve`` audited over real sockets from
loopback addresses of the audit's own."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.audit.profile import load_profile
from bastion.audit.registry import select
from tests.servers import BASTION, BastionServer, free_port, production_env


def audit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), "audit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BastionServer]:
    """``bastion serve`` as deployed: production mode, the contract's limits, the demo
    catalogue (objects need products)."""
    audited = BastionServer(tmp_path_factory.mktemp("audited"), production_env())
    audited.cli("seed-demo")
    with audited as running:
        yield running


def test_a_live_bastion_serve_passes_every_check_with_no_profile(server: BastionServer) -> None:
    """Over real sockets, each client from a loopback address of the audit's own: the
    contract's limits (100 requests per 15 minutes per address...) judge nothing but
    the audit's own probes. The issue asks for the whole audit in under a minute."""
    done = audit(server.url, "--format", "json", timeout=60)
    report = json.loads(done.stdout)
    verdicts = {c["id"]: (c["verdict"], c["reason"]) for c in report["checks"]}
    assert len(verdicts) == len(select(None, None))
    not_passed = {i: v for i, v in verdicts.items() if v[0] != "pass"}
    assert not not_passed, (
        not_passed,
        [c["evidence"] for c in report["checks"] if c["id"] in not_passed],
    )
    assert done.returncode == 0
    addresses = {
        e.split("@")[1].split(":")[0]
        for c in report["checks"]
        for e in c["evidence"]
        if "@127." in e
    }
    assert len(addresses) > 50  # spread over many source addresses, none of them 127.0.0.1
    assert "127.0.0.1" not in addresses


def test_a_target_that_is_not_loopback_is_refused_without_authorized() -> None:
    done = audit("http://192.0.2.10:8000")
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr
    assert "--authorized" in done.stderr


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[limits]\nglobal = "lots"\n', "limits.global"),
        ('[auth.login]\nmethod = "FETCH"\npath = "/login"\n', "auth.login.method"),
        (
            '[objects]\noperations = [{method = "GET", path = "/o/{oid}"}]\n',
            "objects.operations[0].path",
        ),
        ("unknown = 1\n", "unknown"),
        ('[[accounts]]\nemail = "a@example.com"\npassword = 42\n', "accounts[0].password"),
        ("[limits\n", "is not valid TOML"),
    ],
)
def test_a_wrong_profile_is_a_clear_error_naming_the_field_never_a_traceback(
    tmp_path: Path, toml: str, field: str
) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(toml)
    done = audit(f"http://127.0.0.1:{free_port()}", "--profile", str(profile))
    assert done.returncode == 2, done.stderr
    assert field in done.stderr.replace("\n", "")
    assert "Traceback" not in done.stderr + done.stdout


def test_a_wrong_openapi_document_is_a_clear_error_naming_the_field(
    server: BastionServer, tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(
        json.dumps(
            {
                "openapi": "3.1.0",
                "paths": {
                    "/x": {
                        "get": {
                            "responses": {
                                "200": {
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": "#/components/schemas/Nope"}
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
        )
    )
    profile = tmp_path / "profile.toml"
    profile.write_text('openapi = "openapi.json"\n')  # beside the profile
    done = audit(server.url, "--profile", str(profile), "--only", "authz.property-level")
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "paths./x.get.responses.200.content.application/json.schema" in message
    assert "does not resolve" in message
    assert "Traceback" not in done.stderr


def test_an_unknown_check_id_is_refused_with_the_known_ones() -> None:
    done = audit(f"http://127.0.0.1:{free_port()}", "--only", "tokens.nope")
    assert done.returncode == 2
    assert "tokens.algorithm" in done.stderr


def test_a_target_that_does_not_answer_is_exit_status_2() -> None:
    done = audit(f"http://127.0.0.1:{free_port()}", "--format", "json")
    assert done.returncode == 2
    assert "could not be reached" in " ".join(done.stderr.split())
    assert done.stdout == ""


def test_the_json_report_has_exactly_the_documented_schema(server: BastionServer) -> None:
    done = audit(server.url, "--format", "json", "--only", "tokens.lifetime,tokens.no-store")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"target", "started", "version", "checks", "summary"}
    assert report["target"] == server.url
    keys = {"id", "title", "verdict", "owasp", "asvs", "guide", "requests", "reason", "evidence"}
    assert [set(c) for c in report["checks"]] == [keys, keys]
    assert [c["id"] for c in report["checks"]] == ["tokens.lifetime", "tokens.no-store"]
    assert report["summary"]["pass"] == 2
    assert "at most" in done.stderr  # the announced request budget


def test_evidence_never_shows_a_token_a_cookie_or_a_password(server: BastionServer) -> None:
    done = audit(server.url, "--format", "json", "--only", "tokens.*")
    report = json.loads(done.stdout)
    text = json.dumps(report)
    assert "eyJ" not in text
    assert "Audit-" not in text  # the prefix of every password the audit chooses
    assert len([c for c in report["checks"] if c["evidence"]]) == 5


def test_sarif_junit_and_markdown_carry_the_same_verdicts(
    server: BastionServer, tmp_path: Path
) -> None:
    only = ("--only", "tokens.lifetime")
    sarif_file = tmp_path / "audit.sarif"
    assert (
        audit(server.url, "--format", "sarif", "--output", str(sarif_file), *only).returncode == 0
    )
    sarif = json.loads(sarif_file.read_text())
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    assert [(r["ruleId"], r["kind"]) for r in run["results"]] == [("tokens.lifetime", "pass")]
    assert run["tool"]["driver"]["rules"][0]["id"] == "tokens.lifetime"
    junit = ET.fromstring(audit(server.url, "--format", "junit", *only).stdout)  # noqa: S314
    suite = junit.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")
    markdown = audit(server.url, "--format", "markdown", *only).stdout
    assert "| `tokens.lifetime` | **pass** |" in markdown


def test_the_example_profile_of_the_docs_is_a_valid_profile(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "blog.toml").write_text(example)
    profile = load_profile(tmp_path / "blog.toml")
    assert profile.auth.token_pointer == "/data/token"
    assert not profile.has("auth.register")
    assert len(profile.objects.operations) == 4
    assert profile.openapi == f"file:{tmp_path / 'openapi.json'}"


def test_against_a_remote_target_the_audit_says_which_checks_its_limits_kept_unjudged() -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from bastion.audit.command import _advise
    from bastion.audit.engine import AuditResult
    from bastion.audit.verdicts import CheckOutcome

    (limited,) = select(["graphql.limits"], None)
    result = AuditResult(target="https://api.example.com", started=datetime.now(UTC), version="0")
    result.outcomes.append(
        (limited, CheckOutcome("graphql.limits", "inconclusive", "rate limited", limited=True))
    )
    console = Console(record=True, width=200)
    _advise(console, result, spread=False)
    said = console.export_text()
    assert "kept these checks from a verdict: graphql.limits" in said
    assert "raise the per-client limits for the auditor's address" in said
