"""Signed approvals: documents that name a pipeline, an environment, a version, an
approver and an expiry, signed with the approver's Ed25519 key.

An approval document is a JSON object::

    {"pipeline": "shop", "environment": "production", "version": "1.4.2",
     "approver": "alice", "expires": "2026-12-05T12:00:00Z", "signature": "<base64>"}

The signature covers :func:`signed_bytes`: the line ``shipline-approval-v1`` followed by
the five other fields as compact JSON with sorted keys. Keys are PEM files: PKCS#8 for
the private key, SubjectPublicKeyInfo for the public one, as ``shipline approve
--generate-key`` writes them.

NOTE: the format may move to minisign signatures once shipline signs its packages, so
that one tool and one key type serve both. Documents of this version would then need
re-signing.

An approval spec with ``signed`` is approved when at least ``required`` different
approvers from ``keys`` have a valid document for this run: signature valid for the
approver's key, same pipeline, environment and version, and not expired. A second
document from the same approver counts once. Documents come from ``file`` (one file, or
every ``*.json`` file of a folder) and from the environment variable ``env``. Each source
contains one document, a JSON list of them, or one per line. ``cryptography`` is imported
only when signatures are checked or made.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ShiplineError, UsageError
from pipeline.masking import Masker
from pipeline.secretsources import register_key_content

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "FIELDS",
    "SIGNED_SCHEMA",
    "Approval",
    "RunFacts",
    "SignedSpec",
    "SignedStatus",
    "check_signed",
    "load_private_key",
    "now_text",
    "parse_expiry",
    "sign_approval",
    "signed_bytes",
]

logger = logging.getLogger("shipline")

#: The signed fields of an approval document, besides ``signature``.
FIELDS = ("pipeline", "environment", "version", "approver", "expires")

_CONTEXT = b"shipline-approval-v1\n"

#: JSON Schema of ``signed`` in an approval spec.
SIGNED_SCHEMA: dict[str, Any] = {
    "title": "Signed approvals",
    "description": "Approve when enough approvers have signed an approval document for "
    "this pipeline, environment and version (`shipline approve`).",
    "type": "object",
    "additionalProperties": False,
    "required": ["keys"],
    "anyOf": [{"required": ["file"]}, {"required": ["env"]}],
    "properties": {
        "keys": {
            "title": "Approvers",
            "description": "Approver name to the path of their Ed25519 public key (PEM), "
            "relative to the pipeline file's folder.",
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "required": {
            "title": "Required approvals",
            "description": "How many different approvers must approve (default 1).",
            "type": "integer",
            "minimum": 1,
        },
        "file": {
            "title": "Approval documents",
            "description": "A file with approval documents, or a folder whose *.json files "
            "are read; relative to the pipeline file's folder.",
            "type": "string",
            "minLength": 1,
        },
        "env": {
            "title": "Approval variable",
            "description": "An environment variable that contains approval documents.",
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        },
        "version": {
            "title": "Approved version",
            "description": "The version approvals must name (default: the version this "
            "run deploys). Set it for a gate that runs before the deploy step.",
            "type": "string",
            "minLength": 1,
        },
    },
}


# -- documents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """One approval document, before its signature is checked."""

    pipeline: str
    environment: str
    version: str
    approver: str
    #: ISO 8601 date-time with a time zone.
    expires: str
    #: Base64 of the Ed25519 signature of :func:`signed_bytes`.
    signature: str

    def to_json(self) -> str:
        """Serialize the document as one line of JSON, signature last."""
        data = {name: getattr(self, name) for name in (*FIELDS, "signature")}
        return json.dumps(data)


def signed_bytes(approval: Approval) -> bytes:
    """Return the bytes that the signature of ``approval`` covers."""
    fields = {name: getattr(approval, name) for name in FIELDS}
    return _CONTEXT + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def parse_expiry(text: str) -> datetime:
    """Parse an ISO 8601 date-time with a time zone; raise ValueError naming ``text``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid expiry {text!r}: use an ISO 8601 date-time such as "
            f"2026-12-05T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"invalid expiry {text!r}: add a time zone, for example Z for UTC")
    return moment


def sign_approval(key: Ed25519PrivateKey, **fields: str) -> Approval:
    """Create an approval with ``fields`` (the names of :data:`FIELDS`) signed by ``key``."""
    unsigned = Approval(signature="", **fields)
    signature = key.sign(signed_bytes(unsigned))
    return Approval(signature=base64.b64encode(signature).decode("ascii"), **fields)


def load_private_key(path: Path, passphrase: bytes | None = None,
                     masker: Masker | None = None) -> Ed25519PrivateKey:
    """Read an Ed25519 private key in PEM; raise UsageError (exit 2) naming ``path``.

    The key lines go to ``masker``, when given, before the key is parsed.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read key {path}: {exc.strerror}") from exc

    if masker is not None:
        register_key_content(masker, data)
    try:
        key = load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"invalid private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"invalid private key {path}: expected an Ed25519 key")
    return key


def _load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ShiplineError(f"cannot read public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ShiplineError(f"invalid public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ShiplineError(f"invalid public key {path}: expected an Ed25519 key")
    return key


# -- the spec ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedSpec:
    """The ``signed`` part of an approval spec, parsed."""

    #: Approver name to public key path, as written.
    keys: Mapping[str, str]
    required: int = 1
    file: str | None = None
    env: str | None = None
    #: The version approvals must name; ``None`` for the version this run deploys.
    version: str | None = None

    @classmethod
    def parse(cls, value: Any, option: str) -> SignedSpec:
        """Build the spec; raise ShiplineError naming ``option`` for invalid values."""
        if not isinstance(value, Mapping):
            raise ShiplineError(f"{option}: expected a mapping with 'keys' and 'file' or 'env'")
        keys = value.get("keys")
        if not isinstance(keys, Mapping) or not keys:
            raise ShiplineError(f"{option}.keys: name at least one approver and their key")
        required = value.get("required", 1)
        if isinstance(required, bool) or not isinstance(required, int) or required < 1:
            raise ShiplineError(f"{option}.required: expected an integer of 1 or more")
        if required > len(keys):
            raise ShiplineError(
                f"{option}.required: {required} approvals required but only "
                f"{len(keys)} approver(s) in keys; add keys or lower required"
            )
        if not value.get("file") and not value.get("env"):
            raise ShiplineError(f"{option}: give a 'file' or an 'env' variable to read "
                                f"approvals from")
        return cls(
            keys={str(name): str(path) for name, path in keys.items()},
            required=required,
            file=str(value["file"]) if value.get("file") else None,
            env=str(value["env"]) if value.get("env") else None,
            version=str(value["version"]) if value.get("version") is not None else None,
        )

    def describe(self) -> str:
        """Say where approvals are expected, for messages."""
        places = []
        if self.file:
            places.append(f"in {self.file}")
        if self.env:
            places.append(f"in ${self.env}")
        needed = "1 signed approval" if self.required == 1 else (
            f"{self.required} signed approvals from different approvers")
        return f"add {needed} ({' or '.join(places)}) with 'shipline approve'"


@dataclass(frozen=True)
class RunFacts:
    """The facts an approval must match: this run's pipeline, environment, version, time."""

    pipeline: str
    environment: str
    version: str
    #: Unix seconds.
    now: float


@dataclass
class SignedStatus:
    """The outcome of one look at the approvals."""

    approved: bool
    #: Approvers with a valid approval, in the order found.
    approvers: list[str] = field(default_factory=list)
    #: Why each other document was not counted, one line each.
    rejected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Format the approvers and rejections as one line."""
        parts = [f"approved by {', '.join(self.approvers)}" if self.approvers
                 else "no valid approval"]
        parts.extend(self.rejected)
        return "; ".join(parts)


def check_signed(spec: SignedSpec, facts: RunFacts, base: Path) -> SignedStatus:
    """Read the approvals of ``spec`` and count the valid ones for ``facts``.

    Raises ShiplineError for a public key that cannot be read, because no approval can
    be trusted without it. Problems with documents are listed in the status instead.
    """
    keys = {name: _load_public_key(base / path) for name, path in spec.keys.items()}
    status = SignedStatus(approved=False)

    for source, item in _documents(spec, base, status.rejected):
        approver, problem = _verify(item, keys, facts)
        if problem is not None:
            status.rejected.append(f"{source}: {problem}")
        elif approver in status.approvers:
            status.rejected.append(f"{source}: {approver} approved twice; counted once")
        else:
            status.approvers.append(approver)

    status.approved = len(status.approvers) >= spec.required
    return status


def _documents(
    spec: SignedSpec, base: Path, problems: list[str]
) -> Iterator[tuple[str, Any]]:
    """Yield ``(source, document)`` from the file or folder and the variable."""
    if spec.file:
        path = base / spec.file
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{file}: cannot be read: {exc}")
                continue
            yield from _parse_source(text, str(file), problems)
    if spec.env:
        text = os.environ.get(spec.env, "")
        if text.strip():
            yield from _parse_source(text, f"${spec.env}", problems)


def _parse_source(text: str, source: str, problems: list[str]) -> Iterator[tuple[str, Any]]:
    stripped = text.strip()
    try:
        loaded = json.loads(stripped)
    except json.JSONDecodeError:
        loaded = None
        lines = [line for line in stripped.splitlines() if line.strip()]
        documents: list[Any] = []
        for number, line in enumerate(lines, start=1):
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as exc:
                problems.append(f"{source}: line {number} is not valid JSON: {exc.msg}")
        for index, document in enumerate(documents, start=1):
            yield f"{source} #{index}", document
        return

    items: Sequence[Any] = loaded if isinstance(loaded, list) else [loaded]
    for index, document in enumerate(items, start=1):
        yield (f"{source} #{index}" if len(items) > 1 else source), document


def _verify(
    item: Any, keys: Mapping[str, Ed25519PublicKey], facts: RunFacts
) -> tuple[str, str | None]:
    """Return the approver and ``None``, or the problem that makes ``item`` invalid."""
    from cryptography.exceptions import InvalidSignature

    approval = _as_approval(item)
    if isinstance(approval, str):
        return "", approval
    key = keys.get(approval.approver)
    if key is None:
        return approval.approver, f"{approval.approver!r} is not an approver of this gate"

    try:
        signature = base64.b64decode(approval.signature, validate=True)
        key.verify(signature, signed_bytes(approval))
    except (binascii.Error, InvalidSignature):
        return approval.approver, f"invalid signature for approver {approval.approver!r}"

    for name in ("pipeline", "environment", "version"):
        got, expected = getattr(approval, name), getattr(facts, name)
        if got != expected:
            return approval.approver, f"approves {name} {got!r}, not {expected!r}"
    try:
        expires = parse_expiry(approval.expires)
    except ValueError as exc:
        return approval.approver, str(exc)
    if expires.timestamp() <= facts.now:
        return approval.approver, f"approval by {approval.approver!r} expired at " \
                                  f"{expires.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    return approval.approver, None


def _as_approval(item: Any) -> Approval | str:
    """Return the document as an Approval, or what is wrong with it."""
    if not isinstance(item, Mapping):
        return "expected a JSON object"
    missing = [name for name in (*FIELDS, "signature") if not isinstance(item.get(name), str)]
    if missing:
        return f"missing or non-string field(s): {', '.join(missing)}"
    return Approval(**{name: item[name] for name in (*FIELDS, "signature")})


def now_text(seconds: float) -> str:
    """Format Unix ``seconds`` as an ISO 8601 UTC date-time."""
    return f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
