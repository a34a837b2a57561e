"""SecretBox: a sealed secret opens only with its key, in its context, untouched; a
rotated-away key still opens what it sealed."""

from __future__ import annotations

import base64

import pytest

from bastion.security import SealBroken, Secret, SecretBox, derive_key

CURRENT = Secret("mfa-current-secret-" + "c" * 30)
PREVIOUS = Secret("mfa-previous-secret-" + "p" * 30)
LABEL = b"bastion totp seal"
SEED = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def box(*keys: Secret, label: bytes = LABEL) -> SecretBox:
    return SecretBox(keys or (CURRENT,), label=label)


def test_a_sealed_value_opens_in_its_context_and_shows_nothing_of_the_plaintext() -> None:
    sealed = box().seal(SEED, context=b"user-1")
    assert sealed.startswith(f"v1.{CURRENT.key_id}.")
    assert SEED.decode() not in sealed
    assert SEED not in base64.urlsafe_b64decode(sealed.split(".")[2] + "==")
    assert box().open(sealed, context=b"user-1") == SEED


def test_two_seals_of_one_value_differ_a_fresh_nonce_each() -> None:
    assert box().seal(SEED, context=b"u") != box().seal(SEED, context=b"u")


def test_a_sealed_value_moved_to_another_user_does_not_open() -> None:
    sealed = box().seal(SEED, context=b"user-1")
    with pytest.raises(SealBroken) as caught:
        box().open(sealed, context=b"user-2")
    assert "another context" in caught.value.reason


def test_a_box_with_a_wrong_key_cannot_open_even_under_the_right_kid() -> None:
    sealed = box().seal(SEED, context=b"u")
    with pytest.raises(SealBroken):
        box(PREVIOUS).open(sealed, context=b"u")
    # An attacker who relabels the seal with the other box's kid gets nothing either.
    forged = sealed.replace(CURRENT.key_id, PREVIOUS.key_id)
    with pytest.raises(SealBroken):
        box(PREVIOUS).open(forged, context=b"u")


def test_the_label_derives_another_key_so_a_seal_does_not_open_for_another_use() -> None:
    sealed = box().seal(SEED, context=b"u")
    with pytest.raises(SealBroken):
        box(label=b"bastion passkey state").open(sealed, context=b"u")
    assert derive_key(CURRENT, LABEL) != derive_key(CURRENT, b"bastion recovery codes")
    assert derive_key(CURRENT, LABEL) != CURRENT.reveal()[:32]


def test_the_previous_key_still_opens_and_asks_for_a_reseal() -> None:
    old = box(PREVIOUS).seal(SEED, context=b"u")
    rotated = box(CURRENT, PREVIOUS)
    assert rotated.open(old, context=b"u") == SEED
    assert rotated.needs_reseal(old)
    fresh = rotated.seal(SEED, context=b"u")
    assert not rotated.needs_reseal(fresh)
    assert fresh.split(".")[1] == CURRENT.key_id


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],  # one ciphertext char
        lambda s: s[:-8],  # truncated
        lambda s: s.rsplit(".", 1)[0] + "." + "A" * 8,  # shorter than nonce and tag
        lambda s: "v2" + s[2:],  # another version
        lambda s: s.replace(".", "", 1),  # not three parts
        lambda s: s.rsplit(".", 1)[0] + ".!!!not-base64!!!",
        lambda s: "",
    ],
)
def test_a_tampered_seal_raises_seal_broken(tamper: object) -> None:
    sealed = box().seal(SEED, context=b"u")
    broken = tamper(sealed)  # type: ignore[operator]
    assert broken != sealed
    with pytest.raises(SealBroken):
        box().open(broken, context=b"u")


def test_a_box_needs_a_key_and_a_label() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        SecretBox([], label=LABEL)
    with pytest.raises(ValueError, match="label"):
        SecretBox([CURRENT], label=b"")
    with pytest.raises(ValueError, match="label"):
        derive_key(CURRENT, b"")
