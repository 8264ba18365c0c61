"""Signed approvals: count the approval documents that enough approvers signed.

The documents and their minisign signatures are described in
:mod:`pipeline.approvaldocument`. Approver keys are minisign key pairs, made with
``shipline keygen`` or ``minisign -G``. The gate trusts, for each approver, the
minisign public key in a file (``keys``) or in an environment variable that contains
the key's base64 line (``keys_env``).

An approval spec with ``signed`` is approved when at least ``required`` different
approvers have a valid document for this run: signed with the approver's own key in
the prehashed ``ED`` form, same pipeline, environment and version, and not expired. A
second document from the same approver counts once. Documents come from ``file`` (one
file, or every ``*.json`` file of a folder) and from the environment variable ``env``.
``cryptography`` is imported only when signatures are checked or made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.approvaldocument import (
    SignedDocument,
    parse_approval,
    parse_expiry,
    read_file_source,
    read_text_source,
)
from pipeline.errors import ShiplineError

if TYPE_CHECKING:
    from pipeline.signing.keys import PublicKey

__all__ = [
    "SIGNED_SCHEMA",
    "RunFacts",
    "SignedSpec",
    "SignedStatus",
    "check_signed",
]

_APPROVERS = {"type": "object", "minProperties": 1}

#: JSON Schema of ``signed`` in an approval spec.
SIGNED_SCHEMA: dict[str, Any] = {
    "title": "Signed approvals",
    "description": "Approve when enough approvers have signed an approval document for "
    "this pipeline, environment and version (`shipline approve`).",
    "type": "object",
    "additionalProperties": False,
    "allOf": [
        {"anyOf": [{"required": ["keys"]}, {"required": ["keys_env"]}]},
        {"anyOf": [{"required": ["file"]}, {"required": ["env"]}]},
    ],
    "properties": {
        "keys": {
            **_APPROVERS,
            "title": "Approvers",
            "description": "Approver name to the path of their minisign public key file "
            "(`shipline keygen`), relative to the pipeline file's folder.",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "keys_env": {
            **_APPROVERS,
            "title": "Approvers from variables",
            "description": "Approver name to an environment variable that contains their "
            "minisign public key: the base64 line of the .pub file.",
            "additionalProperties": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
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
            "are read; relative to the pipeline file's folder. A document's signature is "
            "in FILE.minisig, or follows the document in the same file.",
            "type": "string",
            "minLength": 1,
        },
        "env": {
            "title": "Approval variable",
            "description": "An environment variable that contains approval documents, each "
            "followed by its minisign signature, as 'shipline approve' prints them.",
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
    #: Approver name to the environment variable that contains their public key.
    keys_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, option: str) -> SignedSpec:
        """Build the spec; raise ShiplineError naming ``option`` for invalid values."""
        if not isinstance(value, Mapping):
            raise ShiplineError(f"{option}: expected a mapping with 'keys' and 'file' or 'env'")
        keys = _approver_mapping(value, "keys", option)
        keys_env = _approver_mapping(value, "keys_env", option)
        if not keys and not keys_env:
            raise ShiplineError(f"{option}.keys: name at least one approver and their key")
        both = sorted(set(keys) & set(keys_env))
        if both:
            raise ShiplineError(f"{option}.keys_env: approver {both[0]!r} is also in keys; "
                                f"keep one of the two")

        count = len(keys) + len(keys_env)
        required = value.get("required", 1)
        if isinstance(required, bool) or not isinstance(required, int) or required < 1:
            raise ShiplineError(f"{option}.required: expected an integer of 1 or more")
        if required > count:
            raise ShiplineError(
                f"{option}.required: {required} approvals required but only "
                f"{count} approver(s) in keys; add keys or lower required"
            )
        if not value.get("file") and not value.get("env"):
            raise ShiplineError(f"{option}: give a 'file' or an 'env' variable to read "
                                f"approvals from")

        return cls(
            keys=keys,
            required=required,
            file=str(value["file"]) if value.get("file") else None,
            env=str(value["env"]) if value.get("env") else None,
            version=str(value["version"]) if value.get("version") is not None else None,
            keys_env=keys_env,
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


def _approver_mapping(value: Mapping[str, Any], name: str, option: str) -> dict[str, str]:
    entries = value.get(name)
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise ShiplineError(f"{option}.{name}: expected a mapping of approver names")
    return {str(approver): str(key) for approver, key in entries.items()}


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

    Raises KeyFileError (a ShiplineError) for a public key that is missing or invalid,
    because no approval can be trusted without it. Problems with documents are listed
    in the status instead.
    """
    keys = load_approver_keys(spec, base)
    status = SignedStatus(approved=False)

    for item in _documents(spec, base, status.rejected):
        approver, problem = _verify(item, keys, facts)
        if problem is not None:
            status.rejected.append(f"{item.source}: {problem}")
        elif approver in status.approvers:
            status.rejected.append(f"{item.source}: {approver} approved twice; counted once")
        else:
            status.approvers.append(approver)

    status.approved = len(status.approvers) >= spec.required
    return status


def load_approver_keys(
    spec: SignedSpec, base: Path, environ: Mapping[str, str] = os.environ
) -> dict[str, PublicKey]:
    """Read each approver's minisign public key; raise KeyFileError naming the file or
    variable that is missing or invalid."""
    from pipeline.signing import KeyFileError
    from pipeline.signing.keys import parse_public_key, read_key_text

    keys = {}
    for approver, path in spec.keys.items():
        file = str(base / path)
        keys[approver] = parse_public_key(read_key_text(file, "public key file"), file)
    for approver, variable in spec.keys_env.items():
        text = environ.get(variable, "")
        if not text.strip():
            raise KeyFileError(
                f"environment variable {variable} (public key of approver {approver!r}) is "
                "not set or empty; set it to the base64 line of their minisign public key"
            )
        keys[approver] = parse_public_key(text, f"environment variable {variable}")
    return keys


def _documents(spec: SignedSpec, base: Path, problems: list[str]) -> Iterator[SignedDocument]:
    """Yield the signed documents of the file or folder, then of the variable."""
    if spec.file:
        path = base / spec.file
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            yield from read_file_source(file, problems)
    if spec.env:
        text = os.environ.get(spec.env, "")
        if text.strip():
            yield from read_text_source(text, f"${spec.env}", problems)


def _verify(
    item: SignedDocument, keys: Mapping[str, PublicKey], facts: RunFacts
) -> tuple[str, str | None]:
    """Return the approver and ``None``, or the problem that makes ``item`` invalid."""
    from pipeline.signing import KeyFileError, VerificationError
    from pipeline.signing.signatures import parse_signature, verify_data

    approval = parse_approval(item.document)
    if isinstance(approval, str):
        return "", approval
    key = keys.get(approval.approver)
    if key is None:
        return approval.approver, f"{approval.approver!r} is not an approver of this gate"

    try:
        signature = parse_signature(item.signature, item.signature_source)
        verify_data(item.document, item.source, signature, [key], item.signature_source,
                    require_prehashed=True)
    except (KeyFileError, VerificationError) as exc:
        reason = str(exc).removeprefix(f"{item.source}: ")
        return approval.approver, f"invalid signature for approver " \
                                  f"{approval.approver!r}: {reason}"

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
