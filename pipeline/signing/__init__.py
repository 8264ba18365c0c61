"""Ed25519 signatures in the minisign file formats, so that minisign and shipline
verify each other's signatures and share key files.

:mod:`pipeline.signing.keys` reads and writes key files, with the secret key
optionally protected by a password through scrypt. :mod:`pipeline.signing.signatures`
makes and checks ``.minisig`` files. Both import ``cryptography`` at module level, so
import them only where a signature is made or checked.
"""

from __future__ import annotations

from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode


class KeyFileError(ShiplineError):
    """A key or signature file that cannot be read, or a wrong or missing password."""

    exit_code = ExitCode.INVALID


class VerificationError(ShiplineError):
    """A signature that does not verify: the package must not be deployed."""

    exit_code = ExitCode.BLOCKED
