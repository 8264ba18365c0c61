"""Secret values that come from outside the pipeline file: the environment and key files.

:mod:`pipeline.interpolate` registers the secrets that the pipeline file names or uses.
This module adds the values a command or plugin can reach without the file naming
them: every environment variable whose name marks it as secret, and the content of key
files that shipline reads. Each value goes into the run's
:class:`~pipeline.masking.Masker`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.masking import Masker, is_sensitive_name

logger = logging.getLogger("shipline")

#: Environment values shorter than this are not masked unless the pipeline file uses
#: or lists their variable. A CI environment has many variables whose name contains
#: KEY or TOKEN but whose value is a flag (``true``, ``auto``), and masking those would
#: hide ordinary words everywhere. Tokens and passwords that CI systems issue are longer.
MIN_ENVIRONMENT_SECRET_LENGTH = 8


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Return the values of variables whose names contain TOKEN, SECRET, PASSWORD or KEY.

    Values shorter than :data:`MIN_ENVIRONMENT_SECRET_LENGTH` characters are left out.
    """
    return [
        value
        for name, value in environ.items()
        if is_sensitive_name(name) and len(value) >= MIN_ENVIRONMENT_SECRET_LENGTH
    ]


def register_environment(masker: Masker, environ: Mapping[str, str]) -> None:
    """Add :func:`environment_secrets` of ``environ`` to ``masker``; log only the count."""
    values = environment_secrets(environ)
    masker.update(values)
    logger.debug("masking the values of %d environment variable(s) with secret names",
                 len(values))


def read_key_file(path: Path, masker: Masker) -> bytes:
    """Read a key file, register its secret lines with ``masker``, and return the bytes.

    :func:`register_key_content` says which lines are registered. Content of one
    line, such as a passphrase, is registered whole as well, spaces included.
    Raises UsageError, naming the file, when it cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the key file: {error.strerror or error}") from None

    register_key_content(masker, data)
    with contextlib.suppress(UnicodeDecodeError):
        lines = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
        if len(lines) == 1:
            masker.add(lines[0])
    return data


def register_key_content(masker: Masker, data: bytes | str) -> None:
    """Register the key lines of a key file's content with ``masker``.

    Call it as soon as the content is read, before anything can print it: a deploy
    command may run ``cat`` on the file, and an error message may quote it. In UTF-8
    content, each line without whitespace is registered: the key lines of minisign,
    age and PEM files. Lines with whitespace are comments and armor
    (``untrusted comment: ...``, ``# public key: ...``, ``-----BEGIN PRIVATE KEY-----``)
    or text that is no key at all, and registering them would mask each of their
    words everywhere, because the masker masks every word of a value. Content that
    is not UTF-8 cannot appear in text output as it is, so its base64 encoding is
    registered instead.
    """
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            masker.add(base64.b64encode(data).decode("ascii"))
            return

    lines = (line.strip() for line in text.splitlines())
    masker.update(line for line in lines if len(line.split()) == 1)
