"""Encrypt and decrypt files in the age format (age-encryption.org/v1).

Files for X25519 recipients (``age1...``) and SSH keys go through pyrage, the Python
binding of the rage implementation, which streams. pyrage 1.4 offers passphrase
(scrypt) encryption only on bytes in memory, so :mod:`pipeline.encryption.passphrase`
implements that recipient type on ``cryptography``, streaming too. Both write and
read the same format as the ``age`` tool.
"""

from __future__ import annotations

from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode


class EncryptionError(ShiplineError):
    """A file that cannot be encrypted or decrypted: wrong key, damaged or not age."""

    exit_code = ExitCode.INVALID
