"""The base64 texts in which a secret can appear, for :mod:`pipeline.masking`.

A secret is often printed base64-encoded: as a whole (``echo -n "$TOKEN" | base64``) or
inside a longer encoded value, such as an HTTP Basic ``Authorization`` header
(``base64("user:" + token)``) or a Kubernetes secret manifest. Inside a longer value,
how the secret's bytes are encoded depends on its offset modulo 3 in the decoded data,
so each of the three offsets gives a different text. For each offset this module
returns the characters that depend only on the secret's bytes: the characters shared
with the bytes before or after it are dropped, because they change with the
surrounding data.

Both alphabets are covered: the standard one (``+`` and ``/``, RFC 4648 section 4) and
the URL-safe one (``-`` and ``_``, section 5). Base64 that a tool wraps into lines, as
``base64`` does every 76 characters, is not matched across the line break.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

#: Base64 texts shorter than this are not returned: they could match ordinary text.
MIN_BASE64_FORM_LENGTH = 6

#: Leading characters of the encoding that share bits with the bytes before the secret,
#: by the secret's offset modulo 3. One byte before it fills 8 of the first 12 bits,
#: which are two characters. Two bytes fill 16 of the first 18 bits, three characters.
_SHARED_LEADING_CHARACTERS = {0: 0, 1: 2, 2: 3}

_ENCODERS: tuple[Callable[[bytes], bytes], ...] = (
    base64.b64encode,
    base64.urlsafe_b64encode,
)


def base64_forms(secret: str) -> set[str]:
    """Return the base64 texts of ``secret`` (UTF-8) that identify it, in both alphabets.

    These are the whole encoding with and without ``=`` padding, and for each offset
    modulo 3 the characters that depend on the secret alone. Texts shorter than
    :data:`MIN_BASE64_FORM_LENGTH` are left out.
    """
    data = secret.encode("utf-8")
    forms: set[str] = set()
    for encode in _ENCODERS:
        whole = encode(data).decode("ascii")
        forms.add(whole)
        forms.add(whole.rstrip("="))
        for offset in (0, 1, 2):
            forms.add(_aligned_fragment(data, offset, encode))

    return {form for form in forms if len(form) >= MIN_BASE64_FORM_LENGTH}


def _aligned_fragment(data: bytes, offset: int, encode: Callable[[bytes], bytes]) -> str:
    """Return the characters that encode ``data`` alone when it starts at ``offset``.

    The bytes before the secret are stood in by zero bytes and their characters
    removed. When the data does not end on a 3-byte boundary, the last character
    shares bits with the byte that follows the secret and is removed too.
    """
    encoded = encode(b"\0" * offset + data).decode("ascii").rstrip("=")
    start = _SHARED_LEADING_CHARACTERS[offset]
    end = len(encoded) - 1 if (offset + len(data)) % 3 else len(encoded)
    return encoded[start:end]
