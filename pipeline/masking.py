"""Secret masking for everything shipline prints, logs or writes into a report.

A :class:`Masker` stores the secret values of one run and replaces each occurrence of
them with :data:`MASK`. Besides the value as given, it masks the forms in which a value
often reappears in output:

- each line of a multi-line value, with surrounding whitespace stripped, so a private
  key printed line by line or a token read from a file with its trailing newline
  stays hidden;
- each whitespace-separated word of a value, because a value interpolated unquoted
  into a command template is split into several arguments that error messages and
  reports then show one by one;
- the URL-encoded form (``urllib.parse.quote`` with ``safe=""``), as in a query string;
- the JSON-escaped forms (``json.dumps`` with and without ``ensure_ascii``, quotes
  removed), as in a JSON report or request body;
- the base64 forms of the value and of the value with surrounding whitespace stripped,
  in the standard and URL-safe alphabets, alone or inside a longer base64 text
  (:mod:`pipeline.base64forms`), each also URL-encoded.

Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored, for a value and
for each of its lines. Masking them would hide ordinary text everywhere (every ``1`` or
``ab`` in the output), and a value that short is guessable anyway. Ignored values leave
no trace: nothing is logged about them.

:class:`MaskingFilter` applies a masker to log records, and :func:`install` attaches
one to a logger and its handlers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pipeline.base64forms import base64_forms

#: The text that replaces every occurrence of a secret.
MASK = "***"

#: A variable whose name contains one of these words (in any case) contains a secret.
SENSITIVE_NAME_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")

#: Values, and lines of values, shorter than this many characters are not masked.
MIN_SECRET_LENGTH = 3


def is_sensitive_name(name: str) -> bool:
    """Return whether a variable name marks its value as secret, such as ``API_TOKEN``.

    The test is a case-insensitive substring match, so ``ssh_private_key`` and
    ``MONKEY_COUNT`` both match. A false positive only masks more output.
    """
    upper = name.upper()
    return any(word in upper for word in SENSITIVE_NAME_WORDS)


def _masked_forms(secret: str) -> set[str]:
    """Compute every text to mask for ``secret``, leaving out forms that are too short."""
    bases = {secret}
    bases.update(line.strip() for line in secret.splitlines())
    bases.update(secret.split())

    forms: set[str] = set()
    for base in bases:
        forms.add(base)
        forms.add(quote(base, safe=""))
        forms.add(json.dumps(base)[1:-1])
        forms.add(json.dumps(base, ensure_ascii=False)[1:-1])

    for base in {secret, secret.strip()}:
        for encoded in base64_forms(base):
            forms.add(encoded)
            forms.add(quote(encoded, safe=""))

    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _compile(forms: Iterable[str]) -> re.Pattern[str] | None:
    """Compile one alternation of ``forms``, longest first, or ``None`` when empty.

    ``re`` takes the first alternative that matches at a position, so ordering by
    length makes a secret that contains another match in full. The forms are grouped
    by their first character, ``a(?:bc|b)|x(?:yz)``, so that ``re`` tries one
    alternative per distinct first character at each position instead of every form.
    ``bench/masking.py`` measures both: with 299 forms, masking 3.5 MB of log text
    that contains none took 18 ms, against 267 ms for a flat alternation
    (docs/benchmarks.md has the machine).
    Only forms with the same first character can match at one position, so the
    grouping keeps the longest-first order that matters.
    """
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    if not ordered:
        return None

    by_first: dict[str, list[str]] = {}
    for form in ordered:
        by_first.setdefault(form[0], []).append(re.escape(form[1:]))
    branches = [
        f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items()
    ]
    return re.compile("|".join(branches))


class Masker:
    """The secret values of one run, and the replacement of them in text and data.

    Safe to share between threads: :meth:`add` registers under a lock, and the next
    :meth:`mask` compiles the pattern under the same lock and reads it once. So a
    concurrent call masks with either the old or the new set of secrets. Compiling
    waits until a mask is needed because it costs time in proportion to the number of
    forms, and a run often adds many secrets before it prints anything.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False

        with self._lock:
            for secret in secrets:
                self._stale |= self._register(secret)

    @property
    def secrets(self) -> frozenset[str]:
        """Copy of the registered values, as passed to :meth:`add` (short ones excluded)."""
        with self._lock:
            return frozenset(self._secrets)

    def add(self, secret: str) -> None:
        """Register ``secret`` so that later calls mask it.

        A value shorter than :data:`MIN_SECRET_LENGTH` characters, the empty string
        included, is ignored without a trace.
        """
        with self._lock:
            self._stale |= self._register(secret)

    def update(self, secrets: Iterable[str]) -> None:
        """Register every value of ``secrets``, as :meth:`add` does for one."""
        with self._lock:
            for secret in secrets:
                self._stale |= self._register(secret)

    def mask(self, text: str) -> str:
        """Replace every occurrence of a registered secret in ``text`` with :data:`MASK`.

        Occurrences that overlap become one :data:`MASK`, so no part of either secret
        shows. Returns ``text`` itself when it contains no secret. Costs one regex
        search over ``text`` in that case, and nothing when no secret is registered.
        """
        if self._stale:
            with self._lock:
                if self._stale:
                    self._pattern = _compile(self._forms)
                    self._stale = False
        pattern = self._pattern
        if pattern is None:
            return text

        match = pattern.search(text)
        if match is None:
            return text

        pieces: list[str] = []
        position = 0
        while match is not None:
            start = match.start()
            end = _extend_over_overlaps(pattern, text, start, match.end())
            pieces.append(text[position:start])
            pieces.append(MASK)
            position = end
            match = pattern.search(text, position)

        pieces.append(text[position:])
        return "".join(pieces)

    __call__ = mask

    def mask_data(self, value: Any) -> Any:
        """Return a deep copy of JSON-like ``value`` with every string masked.

        Mapping keys are masked too. Mappings become ``dict``, lists stay lists and
        tuples stay tuples. Any other value (numbers, booleans, ``None``, objects) is
        returned unchanged, not copied.
        """
        if isinstance(value, str):
            return self.mask(value)

        if isinstance(value, Mapping):
            return {self.mask_data(key): self.mask_data(item) for key, item in value.items()}

        if isinstance(value, list):
            return [self.mask_data(item) for item in value]

        if isinstance(value, tuple):
            return tuple(self.mask_data(item) for item in value)

        return value

    def _register(self, secret: str) -> bool:
        """Add ``secret`` and its forms, and return whether any form is new. Needs the lock."""
        if len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return False

        self._secrets.add(secret)
        new_forms = _masked_forms(secret) - self._forms
        self._forms.update(new_forms)
        return bool(new_forms)


def _extend_over_overlaps(pattern: re.Pattern[str], text: str, start: int, end: int) -> int:
    """Return the end of the masked span that begins with the match ``start:end``.

    Another secret may start inside the match and run past its end, as ``xabc``
    and ``abcdef`` do in ``xabcdef``. The span then grows to cover it, and the loop
    repeats until no secret starting inside the span reaches beyond it.
    """
    position = start + 1
    while position < end:
        match = pattern.match(text, position)
        if match is not None and match.end() > end:
            end = match.end()
        position += 1

    return end


class MaskingFilter(logging.Filter):
    """A logging filter that masks a record's message, traceback and stack text.

    The message is formatted from ``msg`` and ``args`` once, masked and stored back in
    ``msg`` with ``args`` cleared, so no handler receives the raw arguments. A
    traceback is formatted with the default :class:`logging.Formatter`, masked and
    stored in ``exc_text``; ``exc_info`` is then cleared so that no formatter can render
    the raw exception again. Every record passes: the filter changes records and never
    drops one.
    """

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker.mask(_formatted_message(record))
        record.args = None

        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.masker.mask(record.exc_text)

        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info)

        return True


def _formatted_message(record: logging.LogRecord) -> str:
    """Format a record's message, appending the arguments when they do not fit ``msg``.

    ``logging`` itself would report that mismatch from the handler and print the raw
    arguments to stderr, past any filter, so this function never lets it reach a handler.
    """
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):
        return f"{record.msg!s} (logging arguments did not match the message: {record.args!r})"


def install(logger: logging.Logger, masker: Masker) -> MaskingFilter:
    """Attach a :class:`MaskingFilter` for ``masker`` to ``logger`` and to its handlers.

    The filter on the logger masks records logged on it directly. The filters on its
    handlers also mask records that child loggers (``shipline.x``) propagate to those
    handlers. Handlers added afterwards are not covered: call this function again
    after adding one. Returns the filter so that a caller can remove it.
    """
    masking_filter = MaskingFilter(masker)
    logger.addFilter(masking_filter)
    for handler in logger.handlers:
        handler.addFilter(masking_filter)

    return masking_filter
