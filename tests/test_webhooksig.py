"""pipeline.webhooksig: signing and the verification function documented for receivers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pipeline.webhooksig import sign, verify_signature

SECRET = "whsec-0123456789"
BODY = b'{"event":"failed","pipeline":"shop"}'
NOW = 1_800_000_000


def test_sign_format() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_verify_signature_valid() -> None:
    assert verify_signature(SECRET, sign(SECRET, BODY, NOW), BODY, now=NOW)


def test_verify_signature_bytes_secret() -> None:
    assert verify_signature(SECRET.encode(), sign(SECRET, BODY, NOW), BODY, now=NOW)


def test_verify_signature_current_time() -> None:
    import time

    assert verify_signature(SECRET, sign(SECRET, BODY, int(time.time())), BODY)


def test_verify_signature_wrong_secret() -> None:
    assert not verify_signature("other-secret", sign(SECRET, BODY, NOW), BODY, now=NOW)


def test_verify_signature_changed_body() -> None:
    header = sign(SECRET, BODY, NOW)

    assert not verify_signature(SECRET, header, BODY.replace(b"failed", b"passed"), now=NOW)


def test_verify_signature_changed_timestamp() -> None:
    signature = sign(SECRET, BODY, NOW).split(",")[1]

    assert not verify_signature(SECRET, f"t={NOW + 1},{signature}", BODY, now=NOW)


@pytest.mark.parametrize("age", [301, -301])
def test_verify_signature_outside_tolerance(age: int) -> None:
    header = sign(SECRET, BODY, NOW)

    assert not verify_signature(SECRET, header, BODY, now=NOW + age)


def test_verify_signature_custom_tolerance() -> None:
    header = sign(SECRET, BODY, NOW)

    assert verify_signature(SECRET, header, BODY, now=NOW + 600, tolerance=900)


def test_verify_signature_any_of_several() -> None:
    old = sign("old-secret", BODY, NOW).split(",")[1]
    header = f"{sign(SECRET, BODY, NOW)},{old}"

    assert verify_signature(SECRET, header, BODY, now=NOW)
    assert verify_signature("old-secret", header, BODY, now=NOW)


def test_verify_signature_uppercase_hex() -> None:
    timestamp, signature = sign(SECRET, BODY, NOW).split(",")
    hex_digits = signature.removeprefix("v1=")

    assert verify_signature(SECRET, f"{timestamp},v1={hex_digits.upper()}", BODY, now=NOW)


@pytest.mark.parametrize("header", [
    "",
    "v1=abc",
    f"t={NOW}",
    f"t=soon,v1={'0' * 64}",
    f"t={NOW},v1=",
    f"t={NOW},v1=\u00e9\u00e9",
    f"t=\u0663,v1={'0' * 64}",
    "garbage",
])
def test_verify_signature_malformed(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=NOW)


def test_verify_signature_ignores_unknown_scheme() -> None:
    header = f"t={NOW},v0=abc,{sign(SECRET, BODY, NOW).split(',')[1]}"

    assert verify_signature(SECRET, header, BODY, now=NOW)
