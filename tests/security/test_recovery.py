"""RecoveryCodes: ten distinct 50-bit codes, stored only as keyed digests that fold the
ways a user may type a code together, and nothing a TOTP code could pass for."""

from __future__ import annotations

import re

import pytest

from bastion.security import RecoveryCodes

KEY = b"recovery-key-for-tests-32-bytes!"
SHAPE = re.compile(r"[a-z2-7]{5}-[a-z2-7]{5}")


def test_a_set_is_ten_distinct_codes_of_fifty_bits_in_lowercase_base32() -> None:
    codes = RecoveryCodes(KEY).generate()
    assert len(codes) == len(set(codes)) == 10
    assert all(SHAPE.fullmatch(c) for c in codes)


def test_sets_are_random_every_character_of_the_alphabet_turns_up() -> None:
    seen = "".join(c for _ in range(40) for c in RecoveryCodes(KEY).generate())
    assert set(seen.replace("-", "")) == set("abcdefghijklmnopqrstuvwxyz234567")
    sets = {tuple(RecoveryCodes(KEY).generate()) for _ in range(20)}
    assert len(sets) == 20


def test_the_digest_is_a_keyed_hmac_that_never_contains_the_code() -> None:
    rc = RecoveryCodes(KEY)
    code = rc.generate()[0]
    digest = rc.digest(code)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert code.replace("-", "") not in digest
    assert RecoveryCodes(b"another-key-for-tests-32-bytes!!").digest(code) != digest


@pytest.mark.parametrize("typed", ["ABCDE-FGHIJ", "abcde fghij", "abcdefghij", " abcde-fghij "])
def test_the_ways_a_user_types_a_code_have_one_digest(typed: str) -> None:
    rc = RecoveryCodes(KEY)
    assert rc.looks_like(typed)
    assert rc.digest(typed) == rc.digest("abcde-fghij")


@pytest.mark.parametrize(
    "text", ["123456", "abcde-fghi", "abcde-fghijk", "abcde-fgh1j", "abcde_fghij", "", "a" * 200]
)
def test_what_is_not_a_recovery_code_does_not_look_like_one(text: str) -> None:
    assert not RecoveryCodes(KEY).looks_like(text)


def test_a_short_key_or_an_empty_set_is_refused() -> None:
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        RecoveryCodes(b"short")
    with pytest.raises(ValueError, match="1 to 100"):
        RecoveryCodes(KEY, count=0)
    assert len(RecoveryCodes(KEY, count=3).generate()) == 3
