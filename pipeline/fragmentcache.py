"""A record of the plugin schema fragments that already passed the metaschema check.

Checking a fragment of a plugin that is not built in needs jsonschema, whose import
takes about 50 ms, a third of shipline's start-up. An installed plugin's fragments
change only when the plugin or shipline is upgraded, so each fragment that passed is
recorded by a fingerprint, and later starts skip its check. The fingerprint covers the
fragment's canonical JSON and shipline's version, so an upgrade checks again.

The record is one fingerprint per line in ``checked-fragments`` in the cache folder:
``$SHIPLINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/shipline``, else
``~/.cache/shipline``. A folder that cannot be read or written only costs the check:
every fragment is then checked at every start, and nothing fails.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

from pipeline import __version__

logger = logging.getLogger("shipline")

#: The environment variable that names the cache folder.
CACHE_VARIABLE = "SHIPLINE_CACHE_DIR"

_FILE_NAME = "checked-fragments"


def cache_dir() -> Path:
    """Return the folder of shipline's cache, from the environment at the time of the call."""
    explicit = os.environ.get(CACHE_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "shipline"


def fingerprint(fragment: Any) -> str:
    """Return the SHA-256 of the fragment's canonical JSON and shipline's version."""
    import hashlib  # Imported here: only a start with an installed plugin needs it.

    text = json.dumps([__version__, fragment], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_checked(key: str) -> bool:
    """Tell whether the fragment with fingerprint ``key`` passed the check before."""
    return key in _recorded(cache_dir())


def remember(key: str) -> None:
    """Record that the fragment with fingerprint ``key`` passed the check."""
    folder = cache_dir()
    recorded = _recorded(folder)
    if key in recorded:
        return
    recorded.add(key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / _FILE_NAME).open("a", encoding="ascii") as file:
            file.write(key + "\n")
    except OSError as exc:
        logger.debug("cannot record a checked schema fragment in %s: %s", folder, exc)


@functools.lru_cache(maxsize=4)
def _recorded(folder: Path) -> set[str]:
    """Read the fingerprints recorded in ``folder`` once per process."""
    try:
        text = (folder / _FILE_NAME).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return set()
    return {line.strip() for line in text.splitlines() if len(line.strip()) == 64}
