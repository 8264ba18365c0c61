"""``--log-format json``: the JSON formatter alone, behind the masking filter, and in
real ``shipline run`` invocations."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime, timezone

from helpers import stepplugin
from pipeline.exitcodes import ExitCode
from pipeline.logformat import JsonFormatter
from pipeline.masking import Masker, MaskingFilter

SECRET = "s3cr3t-token-value"

PIPELINE = """\
version: 1
name: shop
stages:
  - name: check
    steps:
      - gate: {uses: pass, message: fine}
      - gate: {uses: raise, message: "bad ${DEPLOY_TOKEN}"}
"""


def make_record(message: str = "step %s finished", args: tuple[object, ...] = ("a/1",),
                exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("shipline", logging.WARNING, __file__, 10, message,
                             args, exc_info)  # type: ignore[arg-type]


def exception_info() -> object:
    try:
        raise ValueError(f"token {SECRET} rejected")
    except ValueError:
        return sys.exc_info()


# -- the formatter -----------------------------------------------------------------------


def test_json_formatter_fields():
    record = make_record()
    record.created = 1_800_000_000.25
    entry = json.loads(JsonFormatter().format(record))

    assert entry == {
        "time": "2027-01-15T08:00:00.250Z",
        "level": "WARNING",
        "message": "step a/1 finished",
        "logger": "shipline",
    }


def test_json_formatter_one_line():
    text = JsonFormatter().format(make_record("first\nsecond", ()))
    assert "\n" not in text
    assert json.loads(text)["message"] == "first\nsecond"


def test_json_formatter_non_ascii_escaped():
    text = JsonFormatter().format(make_record("caf\u00e9 %s", ("\u65e5\u672c",)))
    assert text.isascii()
    assert json.loads(text)["message"] == "caf\u00e9 \u65e5\u672c"


def test_json_formatter_exception():
    entry = json.loads(JsonFormatter().format(make_record(exc_info=exception_info())))
    assert entry["exception"].startswith("Traceback (most recent call last):\n")
    assert entry["exception"].endswith(f"ValueError: token {SECRET} rejected")


def test_json_formatter_stack():
    record = make_record()
    record.stack_info = "Stack (most recent call last):\n  File \"x.py\", line 1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["stack"] == record.stack_info


def test_json_formatter_masked_by_filter():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter(Masker([SECRET])))
    handler.handle(make_record("sent %s", (f"https://hooks.test/{SECRET}",),
                               exc_info=exception_info()))
    entry = json.loads(stream.getvalue())

    assert SECRET not in stream.getvalue()
    assert entry["message"] == "sent https://hooks.test/***"
    assert entry["exception"].endswith("ValueError: token *** rejected")


# -- the command line --------------------------------------------------------------------


def run(shipline_cli, write_pipeline, monkeypatch, *options: str):
    stepplugin.EVENTS.clear()
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    path = write_pipeline(PIPELINE)
    return shipline_cli("run", "-p", "helpers.stepplugin", *options, str(path))


def test_log_format_json_lines(shipline_cli, write_pipeline, monkeypatch):
    result = run(shipline_cli, write_pipeline, monkeypatch, "--log-format", "json", "-vv")
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    messages = [entry["message"] for entry in entries]

    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert "run of pipeline shop started" in messages
    assert "step check/2: plugin 'helpers.stepplugin' raised ValueError: bad ***" in messages
    assert {entry["logger"] for entry in entries} == {"shipline"}
    assert {entry["level"] for entry in entries} == {"INFO", "ERROR"}


def test_log_format_json_time_is_utc(shipline_cli, write_pipeline, monkeypatch):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = run(shipline_cli, write_pipeline, monkeypatch, "--log-format", "json")
    (entry,) = [json.loads(line) for line in result.stderr.splitlines()]
    logged = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))

    assert entry["time"].endswith("Z")
    assert before <= logged <= datetime.now(timezone.utc)


def test_log_format_json_masks_secrets(shipline_cli, write_pipeline, monkeypatch):
    result = run(shipline_cli, write_pipeline, monkeypatch, "--log-format", "json", "--debug")
    assert SECRET not in result.stderr
    assert SECRET not in result.stdout


def test_log_format_json_keeps_terminal_output(shipline_cli, write_pipeline, monkeypatch):
    result = run(shipline_cli, write_pipeline, monkeypatch, "--log-format", "json")
    lines = result.stdout.splitlines()

    assert lines[0] == "stage check"
    assert lines[1].startswith("  PASSED   gate pass (")
    assert lines[2].startswith("  ERROR    gate raise (")
    assert lines[3].startswith("shop: 1 stage(s): 1 error in ")


def test_log_format_text_default(shipline_cli, write_pipeline, monkeypatch):
    result = run(shipline_cli, write_pipeline, monkeypatch)
    assert result.stderr == (
        "shipline: ERROR: step check/2: plugin 'helpers.stepplugin' raised ValueError: "
        "bad ***\n"
    )


def test_log_format_invalid(shipline_cli, write_pipeline, monkeypatch):
    result = run(shipline_cli, write_pipeline, monkeypatch, "--log-format", "xml")
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: argument --log-format: invalid choice: 'xml' (choose from "
        "'text', 'json') (see 'shipline run --help')\n"
    )


def test_log_format_on_every_command(shipline_cli, write_pipeline, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    path = write_pipeline(PIPELINE)
    result = shipline_cli("validate", "-p", "helpers.stepplugin", "--log-format", "json",
                          "--debug", str(path))
    entries = [json.loads(line) for line in result.stderr.splitlines()]

    assert result.exit_code == ExitCode.OK
    assert {entry["level"] for entry in entries} == {"DEBUG"}
    assert any(entry["message"].startswith("loaded ") for entry in entries)
