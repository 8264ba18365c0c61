"""``--log-format json``: log records as JSON Lines, for log collectors.

Each record becomes one JSON object on one line with the keys ``time`` (RFC 3339, UTC,
milliseconds), ``level``, ``message`` and ``logger``, plus ``exception`` when the record
carries a traceback and ``stack`` when it carries stack information. Non-ASCII text is
escaped, so a line is valid whatever the encoding of standard error.

Masking is not done here: the handler's :class:`~pipeline.masking.MaskingFilter` runs
first and leaves the masked message in ``msg`` and the masked traceback in
``exc_text``, which is what this formatter reads.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone


class JsonFormatter(logging.Formatter):
    """Formats a log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        entry = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }

        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)

        return json.dumps(entry)
