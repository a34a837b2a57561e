"""Who is the client? Spoofed X-Forwarded-For headers against the resolver and the limits."""

from __future__ import annotations

import pytest

from bastion.security.client_ip import ClientIPConfig, rate_key, resolve_client_ip
from tests.auth.conftest import record_events
from tests.conftest import Clients, StartApp

PROXIES = ClientIPConfig.from_cidrs(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    "forwarded",
    [["203.0.113.50"], ["203.0.113.50, 198.51.100.1"], ["1.1.1.1", "2.2.2.2"], ["garbage"]],
)
def test_x_forwarded_for_is_ignored_from_untrusted_peers(forwarded: list[str]) -> None:
    assert resolve_client_ip("192.0.2.7", forwarded, PROXIES) == "192.0.2.7"


def test_x_forwarded_for_is_ignored_when_no_proxy_is_trusted() -> None:
    assert resolve_client_ip("10.0.0.1", ["203.0.113.50"], ClientIPConfig()) == "10.0.0.1"


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        pytest.param("10.0.0.1", ["203.0.113.50"], "203.0.113.50", id="one proxy"),
        pytest.param(
            "10.0.0.1", ["6.6.6.6, 203.0.113.50"], "203.0.113.50", id="spoofed left part ignored"
        ),
        pytest.param(
            "10.0.0.1",
            ["6.6.6.6, 203.0.113.50, 10.1.2.3, 10.9.9.9"],
            "203.0.113.50",
            id="chain of trusted proxies",
        ),
        pytest.param(
            "10.0.0.1", ["6.6.6.6", "203.0.113.50, 10.1.2.3"], "203.0.113.50", id="several lines"
        ),
        pytest.param("10.0.0.1", [], "10.0.0.1", id="no header: the proxy itself"),
        pytest.param("10.0.0.1", ["10.0.0.2, 10.0.0.3"], "10.0.0.2", id="all hops trusted"),
        pytest.param(
            "10.0.0.1", ["garbage, 203.0.113.50"], "203.0.113.50", id="garbage left of client"
        ),
        pytest.param("10.0.0.1", ["203.0.113.50, garbage"], "10.0.0.1", id="garbage stops walk"),
        pytest.param("10.0.0.1", [" , "], "10.0.0.1", id="empty hops"),
        pytest.param("10.0.0.1", ["203.0.113.50:4711"], "203.0.113.50", id="ipv4 with port"),
        pytest.param("10.0.0.1", ["2001:db8::7"], "2001:db8::7", id="ipv6"),
        pytest.param("10.0.0.1", ["[2001:db8::7]:443"], "2001:db8::7", id="bracketed ipv6"),
        pytest.param("10.0.0.1", ["::ffff:203.0.113.9"], "203.0.113.9", id="ipv4-mapped hop"),
        pytest.param("::ffff:10.0.0.1", ["203.0.113.9"], "203.0.113.9", id="ipv4-mapped peer"),
        pytest.param("fd00::1", ["2001:db8::7, fd12::3"], "2001:db8::7", id="ipv6 proxies"),
        pytest.param("::ffff:192.0.2.7", ["203.0.113.9"], "192.0.2.7", id="mapped untrusted peer"),
    ],
)
def test_trusted_proxies_vouch_for_the_right_most_untrusted_address(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert resolve_client_ip(peer, forwarded, PROXIES) == client


def test_an_ipv4_mapped_spoof_of_a_trusted_range_is_still_untrusted() -> None:
    # The peer is checked as the IPv4 address it maps to: no back door via ::ffff:.
    assert resolve_client_ip("::ffff:192.0.2.1", ["10.0.0.9"], PROXIES) == "192.0.2.1"


def test_ipv6_clients_share_a_rate_key_per_64_network() -> None:
    assert rate_key("2001:db8::1") == rate_key("2001:db8::ffff:1:2") == "2001:db8::/64"
    assert rate_key("2001:db8:0:1::1") != rate_key("2001:db8::1")
    assert rate_key("203.0.113.9") == "203.0.113.9"


async def test_a_trusted_proxy_gives_each_forwarded_client_its_own_budget(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_global="2/minute", trusted_proxies="10.0.0.0/8")
    events = record_events(app)
    proxy = clients(app, "10.0.0.1")

    async def get(client_ip: str) -> int:
        headers = {"X-Forwarded-For": f"6.6.6.6, {client_ip}, 10.2.3.4"}
        return (await proxy.get("/api/products", headers=headers)).status_code

    assert [await get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
    assert [await get("203.0.113.2") for _ in range(2)] == [200, 200]
    assert [e["ip"] for e in events] == ["203.0.113.1"]


async def test_the_auth_limit_follows_the_forwarded_client(
    start_guarded: StartApp, clients: Clients
) -> None:
    app = await start_guarded(rate_limit_auth="2/hour", trusted_proxies="10.0.0.0/8")
    proxy = clients(app, "10.0.0.1")

    async def attempt(client_ip: str) -> int:
        r = await proxy.post(
            "/api/auth/login",
            json={"email": "someone@example.com", "password": "Wrong-Password-1234"},
            headers={"X-Forwarded-For": client_ip},
        )
        return r.status_code

    assert [await attempt("203.0.113.1") for _ in range(3)] == [401, 401, 429]
    assert await attempt("203.0.113.2") == 401
