"""State URLs on the command line: passwords kept out of messages and crash reports,
a missing PostgreSQL driver, and libpq strings that are not URLs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from pipeline.exitcodes import ExitCode

TESTS = Path(__file__).resolve().parents[1]

# Runs the CLI in a Python where importing psycopg fails as when it is not installed.
WITHOUT_PSYCOPG = """\
import sys
sys.modules["psycopg"] = None
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def closed_port() -> int:
    """Return a loopback port that nothing listens on, so a connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_state_missing_psycopg_exit_2(tmp_path: Path):
    url = "postgresql://u:hunter2@127.0.0.1:1/nodb"

    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, "history", "prod", "--state", url],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )

    assert result.returncode == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: cannot use state database postgresql://u:***@127.0.0.1:1/nodb: "
        "the PostgreSQL driver psycopg is not installed: run pip install "
        "'shipline[postgresql]'\n"
    )


def test_state_crash_report_masks_url_passwords(shipline_cli, tmp_path: Path):
    result = shipline_cli("history", "prod", "-p", "helpers.crashplugin", "--state",
                          "postgresql://u:hunter2@127.0.0.1:1/nodb?password=pw", cwd=tmp_path)
    match = re.search(r"written to (\S+);", result.stderr)

    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert match is not None
    report = Path(match.group(1)).read_text(encoding="utf-8")
    Path(match.group(1)).unlink()
    assert "arguments: history prod -p helpers.crashplugin --state postgresql://u:***@" \
        "127.0.0.1:1/nodb?password=***" in report
    assert "hunter2" not in report
    assert "=pw" not in report


def test_state_query_password_masked(shipline_cli, tmp_path: Path):
    port = closed_port()
    url = f"postgresql://deploy@127.0.0.1:{port}/nosuch?password=hunter2"

    result = shipline_cli("history", "prod", "--state", url, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert f"cannot use state database postgresql://deploy@127.0.0.1:{port}/nosuch?" \
        "password=***" in result.stderr
    assert "hunter2" not in result.stderr


def test_state_libpq_string_rejected(shipline_cli, tmp_path: Path):
    result = shipline_cli("history", "prod", "--state",
                          "host=127.0.0.1 dbname=x password=hunter2", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --state: 'host=127.0.0.1 dbname=x password=***' is a libpq "
        "key/value string, not a URL: write postgresql://USER@HOST[:PORT]/DATABASE, and "
        "keep the password in PGPASSWORD or ~/.pgpass\n"
    )
    assert list(tmp_path.iterdir()) == []
