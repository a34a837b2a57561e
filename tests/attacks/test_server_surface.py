"""What the server shows an attacker who probes it rather than the API (ASVS 5.0 V4.1,
V4.2.1, V13.4): the media type of every answer, no transparent redirect to HTTPS, no
request smuggling through conflicting message lengths, no TRACE, no directory listing,
no source control or source files served, and what an error shows (V16.3.4, V16.5.1)."""

from __future__ import annotations

import logging
import re
import socket
import uuid
from pathlib import Path

import httpx
import pytest

from bastion.app import BastionApp
from bastion.db import DatabaseUnavailable
from tests.api.problem import assert_problem
from tests.browser.live_server import live_server
from tests.conftest import Client, client_for

# Every kind of answer the service gives: page, scripts, styles, image, JSON, problem.
ANSWERS = [
    "/",
    "/static/app.js",
    "/static/app.css",
    "/static/docs.js",
    "/static/icon.svg",
    "/healthz",
    "/readyz",
    "/api/products",
    "/api/nope",
    "/openapi.json",
    "/docs",
]


# ------------------------------------------------------------- V4.1.1: media types


@pytest.mark.parametrize("path", ANSWERS)
async def test_every_answer_names_its_media_type_and_the_charset_of_text(
    client: Client, path: str
) -> None:
    """A body without a media type, or text without its charset, is left to the browser
    to sniff or guess (ASVS V4.1.1: text/*, */xml and */*+xml name their charset)."""
    r = await client.get(path)
    assert r.content, path
    media_type, _, params = r.headers["content-type"].partition(";")
    media_type = media_type.strip()
    assert "/" in media_type, r.headers["content-type"]
    if media_type.startswith("text/") or media_type.endswith(("/xml", "+xml")):
        assert params.strip().lower() == "charset=utf-8", (path, r.headers["content-type"])
        r.content.decode("utf-8")
    else:
        # JSON is UTF-8 by definition and takes no charset (RFC 8259, section 11).
        assert media_type in {"application/json", "application/problem+json"}, media_type
        r.json()


async def test_the_api_answers_plain_http_itself_and_never_redirects_it(app: BastionApp) -> None:
    """ASVS V4.1.2: an API client that sends plain HTTP by mistake must see its mistake,
    not be redirected (its credentials already left in clear). TLS is the proxy's."""
    async with client_for(app) as client:
        client.base_url = "http://testserver"  # type: ignore[assignment]
        user = await client.register()
        answers = [
            await client.post("/api/auth/login", json={"email": user["email"], "password": "x"}),
            await client.get("/api/users/me"),
            await client.get("/api/products"),
        ]
    assert [r.status_code for r in answers] == [401, 401, 200]
    assert not any("location" in r.headers for r in answers)


# ------------------------------------------------------------------ V13.4.3, V13.4.4


@pytest.mark.parametrize("path", ["/", "/api/products", "/api/auth/login", "/static/app.js"])
async def test_trace_is_refused_everywhere_and_echoes_nothing(client: Client, path: str) -> None:
    """ASVS V13.4.4: TRACE would echo the request, cookies and Authorization included."""
    secret = "Bearer trace-me-if-you-can"
    r = await client.request("TRACE", path, headers={"Authorization": secret})
    assert r.status_code == 405
    assert "trace-me-if-you-can" not in r.text
    assert "TRACE" not in r.headers.get("allow", "")


@pytest.mark.parametrize("path", ["/static/", "/static/?C=M;O=D", "/api/"])
async def test_no_directory_is_listed(client: Client, path: str) -> None:
    """ASVS V13.4.3: a folder path answers no index of what is in it."""
    r = await client.get(path)
    assert r.status_code in {401, 404}, (path, r.status_code)
    assert "app.js" not in r.text
    assert "<a href" not in r.text


# ------------------------------------------------------------------------- V13.4.1


@pytest.mark.parametrize(
    "path",
    [
        "/.git/config",
        "/.git/HEAD",
        "/static/.git/config",
        "/static/../routes.py",
        "/static/%2e%2e/routes.py",
        "/static/..%2froutes.py",
        "/static/%2e%2e/%2e%2e/config.py",
        "/static/../index.html",
        "/pyproject.toml",
        "/var/secrets.json",
    ],
)
async def test_no_source_control_source_file_or_secret_is_served(client: Client, path: str) -> None:
    """ASVS V13.4.1: only the storefront's own static files are served; a path that
    climbs out of them, or names a repository's or the service's own files, is a 404."""
    r = await client.get(path)
    assert_problem(r, 404)
    for marker in ("[core]", "ref: refs/", "import ", "BASTION_", "{{nonce}}", '"access"'):
        assert marker not in r.text


# -------------------------------------------------------------------------- V4.2.1


def _exchange(url: str, raw: bytes) -> bytes:
    """Send ``raw`` on one connection and read until the server closes it (bounded)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(raw)
        chunks = []
        try:
            while data := conn.recv(65536):
                chunks.append(data)
        except TimeoutError:
            pass
    return b"".join(chunks)


def _statuses(answer: bytes) -> list[bytes]:
    """The status of every response in ``answer`` (a body is not followed by a newline:
    the next status line starts right after it)."""
    return re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)


SMUGGLED = b"GET /api/admin/users HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b'{"email": "a@example.com", "password": "x"}'
CONFLICTS = {
    # Content-Length and Transfer-Encoding together: which one frames the body?
    "cl-and-te": (
        b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\n" + SMUGGLED,
    ),
    # Two lengths that disagree.
    "two-lengths": (
        b"Content-Length: %d\r\nContent-Length: 0\r\n" % len(BODY),
        BODY,
    ),
    # A coding that is not chunked, hiding behind a chunked one.
    "te-obfuscated": (
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 6\r\n",
        b"0\r\n\r\n" + SMUGGLED,
    ),
}


def test_requests_with_conflicting_lengths_are_refused_and_smuggle_nothing(
    tmp_path: Path,
) -> None:
    """ASVS V4.2.1: a request whose length two parsers could read two ways (the classic
    CL.TE and TE.TE smuggling shapes) is refused with a 400 and the connection closed:
    the request hidden in its body is never answered."""
    with live_server(tmp_path) as server:
        answers = {}
        for name, (headers, body) in CONFLICTS.items():
            raw = (
                b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n" + headers + b"\r\n" + body
            )
            answers[name] = _exchange(server.url, raw)
        # The control: two requests pipelined on one connection get two answers, so a
        # request smuggled through a body would be seen answered.
        health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        control = _exchange(server.url, health + b"\r\n" + health + b"Connection: close\r\n\r\n")
    assert _statuses(control) == [b"200", b"200"]
    for name, answer in answers.items():
        assert _statuses(answer) == [b"400"], (name, answer[:500])
        assert b"connection: close" in answer.lower()


# ---------------------------------------------------------- V16.3.4, V16.5.1: errors


@pytest.mark.parametrize(
    ("error", "status", "logged"),
    [
        (RuntimeError("secret_sauce postgresql://bastion:hunter2@db/bastion"), 500, "unhandled"),
        (DatabaseUnavailable("secret_sauce: connection refused"), 503, "unavailable"),
    ],
    ids=["bug", "database-down"],
)
async def test_an_unexpected_error_is_logged_and_answered_without_internals(
    app: BastionApp,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    logged: str,
) -> None:
    """A REST route that fails: the client gets a generic problem (no message, query,
    URL or traceback), with the security headers; the log gets what happened."""
    from bastion.api.routes import catalogue

    async def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(catalogue.catalogue, "get_product", fail)
    caplog.set_level(logging.ERROR, logger="bastion.api")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        r = await client.get(f"/api/products/{uuid.uuid4()}")
    assert_problem(r, status)
    for internal in ("secret_sauce", "hunter2", "postgresql", "Traceback", type(error).__name__):
        assert internal not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"]
    assert logged in caplog.text
    if status == 503:
        assert r.headers["retry-after"]
    else:
        assert any(record.exc_info for record in caplog.records)  # the traceback is kept
