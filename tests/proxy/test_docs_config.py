"""The deployment page shows the nginx configuration that the tests run, byte for byte
(tests/proxy/test_behind_nginx.py starts nginx with docs/nginx.conf)."""

from __future__ import annotations

import re

from tests.proxy.nginx import DOCS_CONF


def test_the_deployment_page_shows_exactly_the_nginx_conf_the_tests_run() -> None:
    page = (DOCS_CONF.parent / "deployment.md").read_text()
    blocks = re.findall(r"^```nginx\n(.*?)^```$", page, re.MULTILINE | re.DOTALL)
    assert blocks == [DOCS_CONF.read_text()]
