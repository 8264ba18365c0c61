"""Approval documents and their minisign signatures: make them and read them back.

An approval document is one JSON object on one line, followed by a line break::

    {"pipeline": "shop", "environment": "production", "version": "1.4.2",
     "approver": "alice", "expires": "2026-12-05T12:00:00Z"}

A minisign signature (prehashed, algorithm ``ED``) covers the exact bytes of the
document, line break included, so ``minisign -S -m approval.json`` signs a document
as ``shipline approve`` does. The signature sits in ``approval.json.minisig`` next to
the document, or directly after the document line in the same text: the document line
followed by the four lines of the ``.minisig`` file. That combined form is what
``shipline approve`` prints, and what an environment variable contains. One text can
contain several combined approvals one after the other.

Only the document's fields are checked against the run, because the trusted comment
is free text that ``minisign -S -t`` lets the approver set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.signing.keys import SecretKey

__all__ = [
    "FIELDS",
    "Approval",
    "SignedDocument",
    "now_text",
    "parse_approval",
    "parse_expiry",
    "read_file_source",
    "read_text_source",
    "sign_approval",
]

#: The fields of an approval document, all strings.
FIELDS = ("pipeline", "environment", "version", "approver", "expires")

#: The number of lines of a ``.minisig`` file.
_SIGNATURE_LINES = 4


@dataclass(frozen=True)
class Approval:
    """The fields of one approval document."""

    pipeline: str
    environment: str
    version: str
    approver: str
    #: ISO 8601 date-time with a time zone.
    expires: str

    def to_document(self) -> str:
        """Serialize the document as one line of JSON with its line break, as signed."""
        return json.dumps({name: getattr(self, name) for name in FIELDS}) + "\n"


@dataclass(frozen=True)
class SignedDocument:
    """The bytes of one document and the text of its signature, as read."""

    #: The document's origin for messages: a path or ``$VARIABLE``, with ``#N`` when the
    #: source contains several documents.
    source: str
    document: bytes
    signature: str
    #: The signature's origin for messages.
    signature_source: str


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


def now_text(seconds: float) -> str:
    """Format Unix ``seconds`` as an ISO 8601 UTC date-time."""
    return f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def sign_approval(approval: Approval, key: SecretKey, now: float) -> tuple[str, str]:
    """Sign ``approval`` with ``key`` at Unix time ``now``; return document and signature.

    The trusted comment names the signing time and the approved pipeline, environment
    and version. Raises KeyFileError (exit 2) when a field contains a line break,
    because the trusted comment is one line.
    """
    from pipeline.signing.signatures import sign_data

    document = approval.to_document()
    comment = (f"timestamp:{int(now)}\tpipeline:{approval.pipeline}\t"
               f"environment:{approval.environment}\tversion:{approval.version}")
    signature = sign_data(document.encode("utf-8"), key, comment,
                          f"approval by {approval.approver}")
    return document, signature


def parse_approval(document: bytes) -> Approval | str:
    """Parse the bytes of a document; return the Approval, or what is wrong with it."""
    try:
        item = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"the document is not valid JSON: {getattr(exc, 'msg', exc)}"
    if not isinstance(item, Mapping):
        return "the document is not a JSON object"

    missing = [name for name in FIELDS if not isinstance(item.get(name), str)]
    if missing:
        return f"missing or non-string field(s): {', '.join(missing)}"
    return Approval(**{name: item[name] for name in FIELDS})


def read_file_source(path: Path, problems: list[str]) -> Iterator[SignedDocument]:
    """Yield the signed documents of one file, appending problems to ``problems``.

    With a ``PATH.minisig`` next to it, the whole file is the document. Without one,
    the file contains combined approvals. A file that does not exist yields nothing,
    because approvals may arrive while a gate waits.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        problems.append(f"{path}: cannot be read: {exc.strerror}")
        return

    signature_path = path.with_name(path.name + ".minisig")
    try:
        signature = signature_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        signature = None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{signature_path}: cannot be read: {exc}")
        return
    if signature is not None:
        yield SignedDocument(str(path), data, signature, str(signature_path))
        return

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return
    yield from read_text_source(text, str(path), problems,
                                f"and {signature_path.name} not found")


def read_text_source(text: str, source: str, problems: list[str],
                     hint: str = "") -> Iterator[SignedDocument]:
    """Yield the combined approvals in ``text``: each a document line and 4 signature lines.

    Blank lines between approvals are skipped. ``hint`` ends the message for a document
    without signature lines.
    """
    lines = text.split("\n")
    blocks: list[tuple[int, str, list[str]]] = []
    number = 0
    while number < len(lines):
        line = lines[number].rstrip("\r")
        number += 1
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            problems.append(f"{source}: line {number}: expected an approval document, "
                            f"a JSON object on one line")
            return
        signature = [entry.rstrip("\r") for entry in lines[number:number + _SIGNATURE_LINES]]
        if len(signature) < _SIGNATURE_LINES or not all(entry.strip() for entry in signature):
            ending = f" {hint}" if hint else ""
            problems.append(f"{source}: line {number}: the document has no signature: "
                            f"expected the 4 lines of a minisign signature after it{ending}")
            return
        blocks.append((number, lines[number - 1] + "\n", signature))
        number += _SIGNATURE_LINES

    for index, (line_number, document, signature) in enumerate(blocks, start=1):
        label = f"{source} #{index}" if len(blocks) > 1 else source
        yield SignedDocument(label, document.encode("utf-8"), "\n".join(signature) + "\n",
                             f"{source} (signature at line {line_number + 1})")

