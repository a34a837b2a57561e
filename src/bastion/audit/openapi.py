"""The target's OpenAPI 3 document: loaded, checked where the audit relies on it, and
read for the schemas of request and response bodies.

Only what the checks use is validated (``openapi``, ``paths``, operations, ``$ref``s
that resolve), each failure a :class:`~bastion.audit.profile.ProfileError` naming the
field, so that a wrong document stops the audit (exit status 2) instead of making its
checks pass on nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bastion.audit.profile import ProfileError

__all__ = ["OpenAPI", "parse_openapi", "read_openapi_file"]

METHODS = ("get", "put", "post", "delete", "patch")


class OpenAPI:
    """A checked document. ``schema_for`` answers the JSON schema of an operation's
    request body or of one of its responses, ``$ref``s resolved (one level at a time)."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.document = document
        self.source = source
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p)
            for p in sorted(document["paths"], key=lambda p: p.count("{"))
        ]

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            schema = self._pointer(schema["$ref"])
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def _pointer(self, ref: str) -> Any:
        value: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            value = (
                value.get(part.replace("~1", "/").replace("~0", "~"))
                if isinstance(value, dict)
                else None
            )
        return value

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The operation a concrete path (``/api/orders/123``) reaches, if documented."""
        for regex, template in self._templates:
            if regex.match(path.split("?")[0]):
                item = self.document["paths"][template]
                op = item.get(method.lower())
                return op if isinstance(op, dict) else None
        return None

    def request_schema(self, method: str, path: str) -> dict[str, Any] | None:
        op = self.operation(method, path)
        content = ((op or {}).get("requestBody") or {}).get("content") or {}
        media = content.get("application/json")
        return self.resolve(media.get("schema")) if isinstance(media, dict) else None

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any] | None:
        op = self.operation(method, path)
        responses = (op or {}).get("responses") or {}
        answer = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        content = (answer or {}).get("content") or {} if isinstance(answer, dict) else {}
        media = content.get("application/json")
        return self.resolve(media.get("schema")) if isinstance(media, dict) else None


def _fail(source: str, where: str, problem: str) -> ProfileError:
    return ProfileError(f"OpenAPI document {source}: {where}: {problem}")


def _refs(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        found = [(where, value["$ref"])] if isinstance(value.get("$ref"), str) else []
        return found + [r for k, v in value.items() for r in _refs(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in _refs(v, f"{where}[{i}]")]
    return []


def parse_openapi(text: str | bytes, source: str) -> OpenAPI:
    """Check a JSON OpenAPI 3.x document. Raises ``ProfileError``."""
    try:
        document = json.loads(text)
    except ValueError:
        raise _fail(source, "(document)", "is not JSON (convert a YAML document first)") from None
    if not isinstance(document, dict):
        raise _fail(source, "(document)", "is not an object")
    version = document.get("openapi")
    if "swagger" in document:
        raise _fail(source, "swagger", "Swagger 2.0 is not supported; convert it to OpenAPI 3")
    if not isinstance(version, str) or not version.startswith("3."):
        raise _fail(source, "openapi", f"{version!r} is not an OpenAPI 3.x version")
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise _fail(source, "paths", "is missing or not an object")
    for path, item in paths.items():
        if not path.startswith("/"):
            raise _fail(source, f"paths.{path}", "a path must start with '/'")
        if not isinstance(item, dict):
            raise _fail(source, f"paths.{path}", "is not a path item object")
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            if not isinstance(op, dict):
                raise _fail(source, f"paths.{path}.{method}", "is not an operation object")
            if not isinstance(op.get("responses", {}), dict):
                raise _fail(source, f"paths.{path}.{method}.responses", "is not an object")
    checked = OpenAPI(document, source)
    for where, ref in _refs(document, "(document)"):
        if not ref.startswith("#/"):
            raise _fail(
                source, where.removeprefix("(document)."), f"external $ref {ref!r} is not supported"
            )
        if checked._pointer(ref) is None:
            raise _fail(source, where.removeprefix("(document)."), f"$ref {ref!r} does not resolve")
    return checked


def read_openapi_file(path: Path) -> OpenAPI:
    try:
        return parse_openapi(path.read_bytes(), str(path))
    except OSError as exc:
        raise ProfileError(f"OpenAPI document {path}: cannot be read ({exc.strerror})") from None
