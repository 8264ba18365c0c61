"""Terminal progress lines, colour and verbosity."""

from __future__ import annotations

import io

import pytest

from pipeline.builtin.terminal import TerminalReporter, use_colour
from pipeline.report import Outcome, StepReport


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def report(outcome: Outcome, **fields: object) -> StepReport:
    return StepReport("s/1", "smoke", "gate", outcome, **fields)  # type: ignore[arg-type]


def test_use_colour_on_tty():
    assert use_colour(TtyStream())


def test_use_colour_not_when_piped():
    assert not use_colour(io.StringIO())


def test_use_colour_respects_no_color(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(TtyStream())


def test_terminal_failed_step_in_red():
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=0, colour=True)
    reporter.in_stage = True
    reporter.shipline_step_report(report(Outcome.FAILED, message="status 500", duration=1.5))
    assert out.getvalue() == "  \x1b[31mFAILED  \x1b[0m smoke (1s500ms): status 500\n"


def test_terminal_quiet_hides_passed():
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=-1, colour=False)
    reporter.shipline_step_report(report(Outcome.PASSED, message="fine"))
    assert out.getvalue() == ""


def test_terminal_details_only_for_failures_by_default():
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=0, colour=False)
    reporter.in_stage = True
    reporter.shipline_step_report(report(Outcome.PASSED, details="table"))
    reporter.shipline_step_report(report(Outcome.FAILED, details="why"))
    assert out.getvalue() == "  PASSED   smoke (0s)\n  FAILED   smoke (0s)\n      why\n"


def test_terminal_long_details_cut_with_note():
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=0, colour=False)
    reporter.in_stage = True
    details = "\n".join(f"row {number}" for number in range(45))

    reporter.shipline_step_report(report(Outcome.FAILED, details=details))

    lines = out.getvalue().splitlines()
    assert lines[1] == "      row 0"
    assert lines[40] == "      row 39"
    assert lines[41] == ("      ... 5 more lines: -v prints them all, and the JUnit report "
                         "has them")
    assert len(lines) == 42


def test_terminal_verbose_prints_long_details_whole():
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=1, colour=False)
    details = "\n".join(f"row {number}" for number in range(45))

    reporter.shipline_step_report(report(Outcome.FAILED, details=details))

    assert out.getvalue().splitlines()[-1] == "      row 44"


def test_terminal_verbose_shows_details_of_passed():
    out = io.StringIO()
    TerminalReporter(out, verbosity=1, colour=False).shipline_step_report(
        report(Outcome.PASSED, details="table")
    )
    assert out.getvalue() == "  PASSED   smoke (0s)\n      table\n"


def test_terminal_skipped_stage_steps_hidden_by_default():
    out = io.StringIO()
    TerminalReporter(out, verbosity=0, colour=False).shipline_step_report(
        report(Outcome.SKIPPED, message="needs 'build', which failed")
    )
    assert out.getvalue() == ""


class StageTitler:
    """A CI reporter that prints stage lines as group titles itself."""

    prints_stage_titles = True


@pytest.mark.parametrize(("plugins", "expected"), [
    ([], "stage ship -> prod\n"),
    ([StageTitler()], ""),
])
def test_terminal_stage_line_once(plugins: list[object], expected: str):
    from types import SimpleNamespace

    from pipeline.plugins import PluginRegistry

    registry = PluginRegistry()
    for number, plugin in enumerate(plugins):
        registry.pluginmanager.register(plugin, name=f"titler-{number}")
    out = io.StringIO()
    reporter = TerminalReporter(out, verbosity=0, colour=False, plugins=registry.pluginmanager)

    reporter.shipline_stage_start(SimpleNamespace(name="ship", environment="prod"))  # type: ignore[arg-type]

    assert out.getvalue() == expected
