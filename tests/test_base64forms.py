"""pipeline.base64forms, and masking of secrets that appear base64-encoded."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from pipeline.base64forms import MIN_BASE64_FORM_LENGTH, base64_forms
from pipeline.masking import MASK, Masker

#: Contains bytes whose encodings differ between the two alphabets ('+' against '-').
SECRET = "s3cr3t>>>?tok~en"


def encoders():
    return [base64.b64encode, base64.urlsafe_b64encode]


@pytest.mark.parametrize("encode", encoders())
def test_base64_forms_whole_value(encode) -> None:
    whole = encode(SECRET.encode()).decode()

    assert whole in base64_forms(SECRET)
    assert whole.rstrip("=") in base64_forms(SECRET)


def test_base64_forms_alphabets_differ() -> None:
    standard = base64.b64encode(SECRET.encode()).decode()
    urlsafe = base64.urlsafe_b64encode(SECRET.encode()).decode()

    assert standard != urlsafe


@pytest.mark.parametrize("encode", encoders())
@pytest.mark.parametrize("prefix", ["", "u", "us", "user:", "admin:xy"])
@pytest.mark.parametrize("suffix", ["", "!", "!?", ":more data"])
def test_masker_masks_secret_inside_longer_base64(encode, prefix, suffix) -> None:
    encoded = encode(f"{prefix}{SECRET}{suffix}".encode()).decode()
    masker = Masker([SECRET])

    masked = masker.mask(f"Authorization: Basic {encoded}\n")

    assert MASK in masked
    for form in base64_forms(SECRET):
        assert form not in masked
    # What remains of the encoded text next to the mask encodes only the bytes around
    # the secret, plus at most one character at each end that mixes in bits of it.
    start, _, end = masked.partition(MASK)
    assert len(start) - len("Authorization: Basic ") <= (len(prefix) + 2) // 3 * 4 + 1
    assert len(end.strip()) <= (len(suffix) + 2) // 3 * 4 + 4


@pytest.mark.parametrize("encode", encoders())
def test_masker_masks_whole_base64_without_trace(encode) -> None:
    encoded = encode(SECRET.encode()).decode()

    assert Masker([SECRET]).mask(f"value={encoded};") == f"value={MASK};"


def test_masker_masks_url_encoded_base64() -> None:
    encoded = quote(base64.b64encode(SECRET.encode()).decode(), safe="")

    assert Masker([SECRET]).mask(f"?auth={encoded}&x=1") == f"?auth={MASK}&x=1"


def test_masker_masks_base64_of_stripped_value() -> None:
    encoded = base64.b64encode(b"hunter2-token").decode()

    assert Masker(["hunter2-token\n"]).mask(encoded) == MASK


def test_base64_forms_skip_short_fragments() -> None:
    assert all(len(form) >= MIN_BASE64_FORM_LENGTH for form in base64_forms("abc"))
    assert base64_forms("ab") == set()
