"""GitHub Actions workflow commands and environment files, formatted as the runner reads them.

A workflow command is one output line ``::name key=value,key=value::data``. The runner
decodes ``%25``, ``%0D`` and ``%0A`` in the data, and also ``%3A`` and ``%2C`` in property
values, so those characters are encoded here (the same escaping as ``command.ts`` in
GitHub's actions/toolkit). An output in the ``GITHUB_OUTPUT`` file uses the multi-line
form ``name<<DELIMITER``, value lines, ``DELIMITER``. The delimiter is random and is
checked not to occur in the value, so that no value can end its own entry early and
add another output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

#: The names that shipline accepts for outputs: what a workflow can write after
#: ``steps.<id>.outputs.`` without brackets.
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def escape_data(text: str) -> str:
    """Encode ``text`` for the data part of a workflow command (after the second ``::``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Encode ``text`` for a property value, where ``:`` and ``,`` end the value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, data: str = "", properties: Mapping[str, str] | None = None) -> str:
    """Format one workflow command line, such as ``::error file=a.yml,line=3::bad``.

    Properties with an empty value are left out, as the runner ignores them anyway.
    """
    pairs = [f"{key}={escape_property(value)}" for key, value in (properties or {}).items()
             if value]
    head = f"{name} {','.join(pairs)}" if pairs else name
    return f"::{head}::{escape_data(data)}"


def mask_values(secret: str) -> list[str]:
    """Return what to pass to ``::add-mask::`` for ``secret``.

    The runner masks a registered value only where it appears whole, so a multi-line
    secret is registered as a whole and also line by line (stripped lines, like the
    masker in :mod:`pipeline.masking`). Lines shorter than 3 characters are skipped,
    because masking them would hide ordinary text in the whole log.
    """
    values = [secret]
    if "\n" in secret or "\r" in secret:
        lines = (line.strip() for line in secret.splitlines())
        values += [line for line in lines if len(line) >= 3 and line not in values]
    return values


def _random_delimiter() -> str:
    import secrets

    return f"ghadelimiter_{secrets.token_hex(16)}"


def output_entry(
    name: str, value: str, make_delimiter: Callable[[], str] = _random_delimiter
) -> str:
    """Format one output for the ``GITHUB_OUTPUT`` file, ending with a line feed.

    Raises ValueError for a name outside :data:`OUTPUT_NAME`, or when ten delimiters in
    a row occur in the value (which a random delimiter makes practically impossible, so
    it points at a broken ``make_delimiter``).
    """
    if not OUTPUT_NAME.fullmatch(name):
        raise ValueError(
            f"output name {name!r} is invalid: use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        )

    for _ in range(10):
        delimiter = make_delimiter()
        if delimiter not in value and delimiter not in name:
            return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    raise ValueError(f"output {name!r}: every delimiter tried occurs in the value")
