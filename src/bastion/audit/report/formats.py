"""Machine formats: JSON (the documented schema), SARIF 2.1.0, JUnit XML, Markdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # nosec B405: it builds XML and never parses any
from collections.abc import Callable
from typing import Any

from bastion.audit.engine import AuditResult
from bastion.audit.registry import Check
from bastion.audit.verdicts import CheckOutcome

__all__ = ["FORMATS", "render", "to_json_document"]

INFORMATION_URI = "https://github.com/bastion-api/bastion/blob/main/docs/audit.md"


def _check_document(check: Check, outcome: CheckOutcome) -> dict[str, Any]:
    return {
        "id": check.id,
        "title": check.title,
        "verdict": outcome.verdict,
        "owasp": check.owasp,
        "asvs": check.asvs,
        "guide": check.guide,
        "requests": outcome.requests,
        "reason": outcome.reason,
        "evidence": outcome.evidence,
    }


def to_json_document(result: AuditResult) -> dict[str, Any]:
    """The JSON report: ``target``, ``started``, ``version``, ``checks``, ``summary``."""
    return {
        "target": result.target,
        "started": result.started.isoformat().replace("+00:00", "Z"),
        "version": result.version,
        "checks": [_check_document(c, o) for c, o in result.outcomes],
        "summary": result.summary(),
    }


def _json(result: AuditResult) -> str:
    return json.dumps(to_json_document(result), indent=2, ensure_ascii=False) + "\n"


_SARIF_KIND = {  # nosec B105: verdicts, not passwords
    "pass": "pass",
    "fail": "fail",
    "not-applicable": "notApplicable",
    "inconclusive": "review",
}


def _sarif(result: AuditResult) -> str:
    rules = [
        {
            "id": c.id,
            "name": c.id.replace(".", "-"),
            "shortDescription": {"text": c.title},
            "fullDescription": {"text": f"{c.title}. Guide: {c.guide}."},
            "help": {"text": c.fix, "markdown": c.fix},
            "helpUri": f"{INFORMATION_URI}#{c.id.replace('.', '')}",
            "properties": {"tags": ["security", c.owasp, f"ASVS-{c.asvs}"]},
        }
        for c, _ in result.outcomes
    ]
    results = [
        {
            "ruleId": c.id,
            "ruleIndex": i,
            "kind": _SARIF_KIND[o.verdict],
            "level": "error" if o.verdict == "fail" else "none",
            "message": {"text": f"{o.verdict}: {o.reason}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": result.target}}}],
            "properties": {"requests": o.requests, "evidence": o.evidence},
        }
        for i, (c, o) in enumerate(result.outcomes)
    ]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion audit",
                        "version": result.version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": result.started.isoformat().replace("+00:00", "Z"),
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _junit(result: AuditResult) -> str:
    summary = result.summary()
    suite = ET.Element(
        "testsuite",
        name=f"bastion audit {result.target}",
        tests=str(len(result.outcomes)),
        failures=str(summary["fail"]),
        errors="0",
        skipped=str(summary["not-applicable"] + summary["inconclusive"]),
        timestamp=result.started.isoformat(),
        time=f"{sum(o.seconds for _, o in result.outcomes):.3f}",
    )
    for check, outcome in result.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"bastion.audit.{check.id.split('.')[0]}",
            name=f"{check.id}: {check.title}",
            time=f"{outcome.seconds:.3f}",
        )
        details = "\n".join([*outcome.evidence, f"fix: {check.fix}"])
        if outcome.verdict == "fail":
            failure = ET.SubElement(case, "failure", message=outcome.reason, type=check.owasp)
            failure.text = details
        elif outcome.verdict != "pass":
            ET.SubElement(case, "skipped", message=f"{outcome.verdict}: {outcome.reason}")
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(outcome.evidence)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(result: AuditResult) -> str:
    summary = result.summary()
    lines = [
        f"# bastion audit of {result.target}",
        "",
        f"Started {result.started:%Y-%m-%d %H:%M:%S} UTC, bastion {result.version}: "
        + ", ".join(f"{summary[v]} {v}" for v in ("pass", "fail", "not-applicable", "inconclusive"))
        + f", {summary['requests']} requests.",
        "",
        "| check | verdict | OWASP | ASVS | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for check, outcome in result.outcomes:
        lines.append(
            f"| `{check.id}` | **{outcome.verdict}** | {check.owasp} | {check.asvs} "
            f"| {_cell(outcome.reason)} |"
        )
    for check, outcome in result.outcomes:
        if outcome.verdict == "pass":
            continue
        lines += ["", f"## `{check.id}`: {outcome.verdict}", "", _cell(outcome.reason), ""]
        lines += [f"Fix: {check.fix}", "", "```", *outcome.evidence, "```"]
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[AuditResult], str]] = {
    "json": _json,
    "sarif": _sarif,
    "junit": _junit,
    "markdown": _markdown,
}


def render(result: AuditResult, fmt: str) -> str:
    """``result`` in ``fmt`` (one of :data:`FORMATS`)."""
    return FORMATS[fmt](result)
