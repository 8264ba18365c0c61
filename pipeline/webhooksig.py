"""Sign webhook bodies and verify the signatures, for shipline and for receivers.

The ``webhook`` notifier sends each JSON body with these headers:

``X-Shipline-Signature: t=<unix seconds>,v1=<hex>``
    ``v1`` is the HMAC-SHA256, keyed with the shared secret, of the ASCII timestamp,
    a ``.`` and the raw body bytes. The timestamp is inside the signed text, so an old
    request cannot be replayed with a fresh time.
``Idempotency-Key: <key>``
    The same for every attempt to deliver one notification, different for every other.
    Receivers drop a key they have already processed, because a retried request may
    arrive twice (for example after a timeout that hid a successful first attempt).

A receiver verifies the raw body, before parsing it, with :func:`verify_signature`::

    import json

    from pipeline.webhooksig import verify_signature

    def handle(headers, raw_body):
        if not verify_signature(SECRET, headers.get("X-Shipline-Signature", ""), raw_body):
            return 401
        key = headers["Idempotency-Key"]
        if already_seen(key):
            return 200
        event = json.loads(raw_body)
        ...

Receivers that do not run Python compute the same HMAC: hex-encoded HMAC-SHA256 of
``f"{t}.".encode() + body`` with the secret as the key, compared in constant time.

``hashlib`` and ``hmac`` are imported on the first signature, not at start-up, because
the webhook plugin imports this module in every shipline command.
"""

from __future__ import annotations

import time

#: Name of the header that carries the timestamp and the signature.
SIGNATURE_HEADER = "X-Shipline-Signature"
#: Name of the header that carries the idempotency key.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Seconds a signature stays valid either side of its timestamp, by default.
DEFAULT_TOLERANCE = 300.0


def sign(secret: bytes | str, body: bytes, timestamp: int) -> str:
    """Return the value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_signature(secret: bytes | str, header: str, body: bytes, *,
                     tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> bool:
    """Return whether ``header`` is a valid signature of ``body`` made with ``secret``.

    ``header`` is the value of :data:`SIGNATURE_HEADER`; ``body`` the raw bytes received.
    False when the header is malformed, when its timestamp is more than ``tolerance``
    seconds away from ``now`` (default: the current Unix time) in either direction, or
    when no ``v1`` value matches. Several ``v1`` values are allowed, so a sender can sign
    with an old and a new secret while the secret is being changed. The comparison takes
    the same time wherever the values differ.
    """
    import hmac

    timestamp, signatures = _parse(header)
    if timestamp is None or not signatures:
        return False

    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False

    expected = _digest(secret, body, timestamp)
    matched = False
    for signature in signatures:
        # No early exit, so the time taken does not tell which value matched.
        matched |= hmac.compare_digest(expected, signature)
    return matched


def _digest(secret: bytes | str, body: bytes, timestamp: int) -> str:
    import hashlib
    import hmac

    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int | None, list[str]]:
    """Split ``t=...,v1=...`` into the timestamp and the ``v1`` values; unknown keys are
    skipped, so a later scheme can be added next to ``v1``."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if not value.isascii():
            # hmac.compare_digest raises TypeError for non-ASCII text.
            continue
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.lower())
    return timestamp, signatures
