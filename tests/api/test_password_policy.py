"""The password policy an ASVS 5.0 Level 2 auditor checks line by line: passwords of
any composition (V6.2.5), masked fields that let password managers and paste work
(V6.2.6, V6.2.7), verified exactly as typed (V6.2.8), and no password that leans on
the service's own words or the account's email or name (V6.1.2, V6.2.11). Length and
common passwords: tests/api/test_auth.py and tests/attacks/ (API2)."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bastion.api.password_context import SERVICE_WORDS
from bastion.app import BastionApp, create_app
from bastion.config import load_settings
from bastion.db import users
from bastion.security.password_context import without_context
from bastion.security.passwords import password_problems
from tests.api.problem import assert_problem
from tests.conftest import PASSWORD, Client, client_for

EMAIL_NAME = ("alice.smith@example.com", "Alice Smith")


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def _register(client: Client, password: str, *, email: str, name: str = "Someone") -> int:
    r = await client.post(
        "/api/auth/register", json={"email": email, "password": password, "name": name}
    )
    return r.status_code


# ------------------------------------------------------------ V6.2.5: any composition


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",  # lower-case letters and spaces only
        "vintageplumbingwalrus",  # one class of character, no digit, no symbol
        "8271946305917264",  # digits only
        "пароль-для-заказов-тигр",  # Cyrillic
        "🦊🌵🎻🚲🧊🪁🦉🍋🛶🧲🪐🎲",  # emoji only
        "  leading and trailing spaces  ",
    ],
    ids=["spaces", "one-class", "digits", "cyrillic", "emoji", "edge-spaces"],
)
async def test_passwords_of_any_composition_are_accepted_and_log_in(
    client: Client, password: str
) -> None:
    """No rule asks for upper case, digits or symbols, or refuses any character."""
    email = _email()
    assert await _register(client, password, email=email) == 201
    await client.login(email, password)


# ------------------------------------------------------- V6.2.8: verified exactly


@pytest.mark.parametrize(
    "variant",
    [
        PASSWORD.upper(),
        PASSWORD.lower(),
        PASSWORD.swapcase(),
        PASSWORD + " ",
        " " + PASSWORD,
        PASSWORD[:-1],
        PASSWORD + "x",
    ],
    ids=["upper", "lower", "swapcase", "trailing-space", "leading-space", "truncated", "extended"],
)
async def test_a_password_is_verified_exactly_as_it_was_typed(client: Client, variant: str) -> None:
    """Attacker: a variant of the right password (case changed, a space added, a character
    dropped or added). Defence: nothing is trimmed, truncated or case-folded."""
    user = await client.register()
    r = await client.post("/api/auth/login", json={"email": user["email"], "password": variant})
    assert_problem(r, 401)
    await client.login(user["email"], PASSWORD)


async def test_characters_past_72_bytes_still_count(client: Client) -> None:
    """bcrypt ignores every byte past the 72nd; Argon2id must not: a long password
    differing only at its end is a wrong password."""
    password = "Vq8-" + "k" * 90 + "-end1"
    email = _email()
    assert await _register(client, password, email=email) == 201
    wrong = password[:-1] + "2"
    r = await client.post("/api/auth/login", json={"email": email, "password": wrong})
    assert_problem(r, 401)
    await client.login(email, password)


# ------------------------------------------------------ V6.2.6, V6.2.7: the form


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            self.inputs.append(dict(attrs))


async def test_password_fields_are_masked_and_open_to_password_managers(client: Client) -> None:
    """Every password field is ``type=password`` with an ``autocomplete`` a password
    manager understands, and nothing refuses paste, autofill or drop."""
    page = await client.get("/")
    assert page.status_code == 200
    parser = _Inputs()
    parser.feed(page.text)
    fields = [i for i in parser.inputs if "password" in (i.get("name") or "")]
    assert len(fields) >= 2  # the login and registration forms
    for field in fields:
        assert field.get("type") == "password", field
        assert field.get("autocomplete") in {"current-password", "new-password"}, field
        assert not {"onpaste", "oncopy", "ondrop"} & field.keys(), field
    script = (await client.get("/static/app.js")).text
    assert not re.search(r"""["'](paste|drop)["']|onpaste|ondrop""", script)


# -------------------------------------------- V6.1.2, V6.2.11: context-specific words


@pytest.mark.parametrize(
    "password",
    [
        "Bastion-Orders-2026",
        "Bastionorders12",
        "b4st10n-0rd3rs",  # digits for letters
        "S7orefront-Adm1n-99",
        "Admin-Orders-Bastion-Storefront",
    ],
)
def test_passwords_built_on_the_services_words_are_refused(password: str) -> None:
    """A general strength estimate scores these highly (the joins and padding look
    random to it); without the service's words what is left is trivial."""
    assert password_problems(password) == []  # strong to a check that knows no context
    assert password_problems(password, context=EMAIL_NAME + SERVICE_WORDS) == [
        "is too easy to guess from the name of this service, your email or your name"
    ]


@pytest.mark.parametrize("password", ["Alice-Smith-2026!", "Sm1th-Example-77"])
def test_passwords_built_on_the_accounts_email_or_name_are_refused(password: str) -> None:
    assert password_problems(password) == []
    assert password_problems(password, context=EMAIL_NAME) != []


@pytest.mark.parametrize(
    "password",
    [PASSWORD, "tr0ub4dor&3-Bastion-horse-staple", "MyBastionStore!", "Welcome-Example-2026-xq"],
)
def test_a_strong_password_that_mentions_a_context_word_is_still_accepted(password: str) -> None:
    """Only the words are taken out: what is left, strong on its own, is enough."""
    assert password_problems(password, context=EMAIL_NAME + SERVICE_WORDS) == []


def test_only_the_context_words_are_taken_out() -> None:
    assert without_context("xBASTIONy", ["bastion"]) == "xy"
    assert without_context("b4st10n!", ["bastion"]) == "!"
    assert without_context("nothing here", ["bastion"]) is None
    assert without_context("anything", []) is None
    # Fragments shorter than four characters (com, bob) are left alone.
    assert without_context("Welcome-to-it", ["bob@x.com"]) is None


async def test_registration_and_password_change_refuse_the_services_words(
    app: BastionApp,
) -> None:
    """End to end: both places that set a password use the documented list."""
    async with client_for(app) as client:
        r = await client.post(
            "/api/auth/register",
            json={"email": _email(), "password": "Bastion-Orders-2026", "name": "Someone"},
        )
        assert_problem(r, 400, "#/password")
        user = await client.user(name="Alice Smith")
        r = await client.post(
            "/api/users/me/password",
            json={"currentPassword": PASSWORD, "newPassword": "Alice-Smith-2026!"},
            headers=user["headers"],
        )
        assert_problem(r, 400, "#/newPassword")
        await client.login(user["email"], PASSWORD)  # unchanged


# ------------------------------------------------------------------ V11.4.2: storage


async def test_passwords_are_stored_with_argon2id_at_owasps_minimum_cost_by_default(
    tmp_path: Path,
) -> None:
    """The default configuration, as served: Argon2id, 19 MiB, 2 passes, 1 lane, with a
    16-byte random salt (OWASP's password storage minimum)."""
    import base64

    app = create_app(load_settings(var_dir=tmp_path / "var"))
    try:
        stored = await app.services.hasher.hash(PASSWORD)
        again = await app.services.hasher.hash(PASSWORD)
    finally:
        app.services.hasher.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    salt = stored.split("$")[4]
    assert len(base64.b64decode(salt + "=" * (-len(salt) % 4))) >= 16
    assert stored != again  # a fresh salt each time


async def test_a_login_moves_a_hash_onto_raised_argon2_parameters(start_app: Any) -> None:
    """ASVS V11.2.2: the cost can be raised at any time; each stored hash follows at its
    account's next successful login, without the user doing anything."""
    before = await start_app()
    async with client_for(before) as client:
        user = await client.register()
    row = await users.get_user_by_email(before.services.db, email=user["email"])
    assert row is not None
    assert "$m=1024,t=1,p=1$" in row["password_hash"]

    after = await start_app(argon2_memory_kib=2048, argon2_time_cost=2)
    async with client_for(after) as client:
        await client.login(user["email"])
        row = await users.get_user_by_email(after.services.db, email=user["email"])
        assert row is not None
        assert "$m=2048,t=2,p=1$" in row["password_hash"]
        await client.login(user["email"])  # the upgraded hash verifies
