"""Debian's nginx running docs/nginx.conf, the deployment page's configuration, on
free loopback ports with a private prefix (no root path, ``daemon off``).

Only what differs on a test machine is replaced: the two ``listen`` ports, the
upstream servers and the certificate (a fresh self-signed one). Each replaced text must
be found in the docs as written, so a change there that the test would no longer
match fails here instead of testing something else. Around the file, in the ``http``
block, the test adds its own logs, temp paths and one header, ``X-Test-Upstream``
(which instance answered).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers import free_port

DOCS_CONF = Path(__file__).resolve().parents[2] / "docs" / "nginx.conf"
HOST = "api.example.com"
UPSTREAM = re.compile(r"^(\s*)server 127\.0\.0\.1:800[12];$", re.MULTILINE)
CERT, KEY = "/etc/ssl/bastion/fullchain.pem", "/etc/ssl/bastion/privkey.pem"


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise RuntimeError("nginx is not installed; these tests need it (Debian's nginx)")
    return found


def _replace_once_or_more(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"docs/nginx.conf no longer contains {old!r}: update the test")
    return text.replace(old, new)


class Nginx:
    """``https_url`` serves ``docs/nginx.conf`` in front of ``upstreams`` (``host:port``)."""

    def __init__(self, upstreams: list[str]) -> None:
        self.binary = _binary()
        self.root = Path(tempfile.mkdtemp(prefix="bastion-nginx-"))
        self.root.chmod(0o755)  # the worker (nobody, when run as root) creates temp dirs
        self.https_port, self.http_port = free_port(), free_port()
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.error_log = self.root / "error.log"
        cert, key = self.root / "cert.pem", self.root / "key.pem"
        self.certificate = cert
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "1", "-subj", f"/CN={HOST}", "-addext",
             f"subjectAltName=DNS:{HOST},IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        text = DOCS_CONF.read_text()
        servers = UPSTREAM.findall(text)
        if len(servers) != 2:
            raise AssertionError("docs/nginx.conf's upstream no longer lists two 127.0.0.1:800N")
        lines = iter(upstreams)
        text = UPSTREAM.sub(lambda m: f"{m.group(1)}server {next(lines)};", text)
        text = _replace_once_or_more(text, "listen 443 ", f"listen 127.0.0.1:{self.https_port} ")
        text = _replace_once_or_more(text, "listen 80", f"listen 127.0.0.1:{self.http_port}")
        text = _replace_once_or_more(text, CERT, str(cert))
        text = _replace_once_or_more(text, KEY, str(key))
        (self.root / "bastion.conf").write_text(text)
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {self.root / 'temp' / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.root / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.root / 'nginx.pid'};\n"
            f"error_log {self.error_log} warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.root / 'access.log'};\n{temp}\n"
            "    add_header X-Test-Upstream $upstream_addr always;\n"
            f"    include {self.root / 'bastion.conf'};\n"
            "}\n"
        )
        (self.root / "temp").mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts this nginx's certificate (and only it)."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def start(self) -> None:
        command = [self.binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf")]
        command += ["-e", str(self.error_log)]
        with (self.root / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + 10
        while not (_accepts(self.https_port) and _accepts(self.http_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                logs = [self.root / "stderr.log", self.error_log]
                text = "".join(p.read_text() for p in logs if p.exists())
                raise RuntimeError(f"nginx did not start:\n{text}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGQUIT: nginx's graceful stop; SIGKILL if it takes more than 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
