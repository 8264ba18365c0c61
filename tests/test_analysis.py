from __future__ import annotations

import argparse
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline import hookimpl
from pipeline.analysis import (
    ANALYSIS_REF_SCHEMA,
    COMMON_ANALYSIS_PROPERTIES,
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisError,
    AnalysisResult,
    AnalysisSettings,
    Measurement,
    MeasurementRequest,
    check_analyses,
    estimate_analysis,
    judge,
    resolve_analysis,
    run_analysis,
)
from pipeline.clock import FakeClock
from pipeline.conditions import ConditionError, compile_condition
from pipeline.config import Config
from pipeline.context import Interrupted, RunContext
from pipeline.diagnostics import Mark
from pipeline.plan import Plan, Stage, Step, freeze
from pipeline.plugins import PluginRegistry

START = 1_800_000_000.0

#: One scripted reply of the fake provider: values, an exception to raise, or a function
#: of the cancel event.
Reply = Mapping[str, Any] | BaseException | Callable[[threading.Event], Any]


class ScriptedProvider:
    """A metric provider that replays a list of replies, one per measurement."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[MeasurementRequest] = []
        self.closed = False

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> Any:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(cancel)
        return reply

    def close(self) -> None:
        self.closed = True


class FakeProviderPlugin:
    """Registers the provider ``fake``, which returns ``provider``."""

    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider
        self.options: list[Mapping[str, Any]] = []

    @hookimpl
    def shipline_make_provider(
        self, name: str, options: Mapping[str, Any], context: RunContext
    ) -> ScriptedProvider | None:
        if name != "fake":
            return None
        self.options.append(options)
        return self.provider


def make_context(
    analyses: Mapping[str, Any],
    plugin: object | None = None,
    clock: FakeClock | None = None,
    stages: Sequence[Stage] = (),
) -> RunContext:
    registry = PluginRegistry()
    if plugin is not None:
        registry.register(plugin, name="fake-provider", origin="test")
    config = Config(options=argparse.Namespace(), registry=registry, clock=clock or FakeClock())
    plan = Plan(
        name="test",
        file=Path("shipline.yml"),
        stages=tuple(stages),
        environments={},
        analyses=freeze(analyses),
        notifications=(),
        state={},
    )
    return RunContext(plan, config)


def run_fake(
    replies: Sequence[Reply], clock: FakeClock | None = None, **options: Any
) -> tuple[AnalysisResult, ScriptedProvider]:
    provider = ScriptedProvider(replies)
    template = {"provider": "fake", "success": "rate >= 0.9", **options}
    context = make_context({"check": template}, FakeProviderPlugin(provider), clock)
    result = run_analysis(
        "check", context, stable_version="1", canary_version="2", endpoint="http://x"
    )
    return result, provider


GOOD = {"rate": 1.0}
BAD = {"rate": 0.5}
NO_DATA: dict[str, float | None] = {"rate": None}


# -- running -----------------------------------------------------------------------------


def test_run_analysis_successful_after_count() -> None:
    result, _ = run_fake([GOOD, GOOD, GOOD], count=3)

    assert result.verdict == SUCCESSFUL
    assert result.ok
    assert result.message == "3 measurements taken: 3 successful"
    assert [m.verdict for m in result.measurements] == [SUCCESSFUL] * 3


def test_run_analysis_default_count_is_one() -> None:
    result, provider = run_fake([GOOD, GOOD])

    assert len(result.measurements) == 1
    assert len(provider.replies) == 1


def test_run_analysis_waits_initial_delay_and_interval() -> None:
    clock = FakeClock(START)

    result, _ = run_fake([GOOD, GOOD, GOOD], clock, count=3, interval="30s", initial_delay=5)

    assert clock.sleeps == [5.0, 30.0, 30.0]
    assert [m.time for m in result.measurements] == [START + 5, START + 35, START + 65]


def test_run_analysis_default_interval_is_60s() -> None:
    clock = FakeClock(START)

    run_fake([GOOD, GOOD], clock, count=2)

    assert clock.sleeps == [60.0]


def test_run_analysis_measurement_values_and_message() -> None:
    result, _ = run_fake([{"rate": 0.95, "other": 3}])

    measurement = result.measurements[0]
    assert measurement == Measurement(
        START, {"rate": 0.95, "other": 3.0}, SUCCESSFUL,
        "success condition 'rate >= 0.9' is true (rate=0.95)",
    )


def test_run_analysis_passes_request_to_provider() -> None:
    _, provider = run_fake([GOOD, GOOD], count=2, timeout="5s")

    args = {"canary_version": "2", "stable_version": "1", "environment": ""}
    assert provider.requests == [
        MeasurementRequest("check", "2", "1", "http://x", number=1, timeout=5.0, args=args),
        MeasurementRequest("check", "2", "1", "http://x", number=2, timeout=5.0, args=args),
    ]


def test_run_analysis_passes_options_to_provider() -> None:
    provider = ScriptedProvider([GOOD])
    plugin = FakeProviderPlugin(provider)
    context = make_context({"check": {"provider": "fake", "success": "rate > 0", "query": "q"}},
                           plugin)

    run_analysis("check", context, stable_version=None, canary_version="2", endpoint=None)

    assert plugin.options[0]["query"] == "q"


def test_run_analysis_closes_provider() -> None:
    _, provider = run_fake([GOOD])

    assert provider.closed


def test_run_analysis_fails_at_first_failure() -> None:
    result, provider = run_fake([GOOD, BAD, GOOD], count=3)

    assert result.verdict == FAILED
    assert result.message == (
        "1 measurement failed, more than failure_limit 0; last: success condition "
        "'rate >= 0.9' is false (rate=0.5)"
    )
    assert len(result.measurements) == 2
    assert provider.replies == [GOOD]


def test_run_analysis_failures_within_limit_succeed() -> None:
    result, _ = run_fake([BAD, GOOD, BAD], count=3, failure_limit=2)

    assert result.verdict == SUCCESSFUL
    assert result.message == "3 measurements taken: 1 successful, 2 failed"


def test_run_analysis_failures_beyond_limit_fail() -> None:
    result, _ = run_fake([BAD, GOOD, BAD, GOOD], count=4, failure_limit=1)

    assert result.verdict == FAILED
    assert len(result.measurements) == 3
    assert result.message.startswith("2 measurements failed, more than failure_limit 1;")


def test_run_analysis_no_data_is_inconclusive() -> None:
    result, _ = run_fake([NO_DATA])

    assert result.verdict == INCONCLUSIVE
    assert result.message == (
        "1 measurement inconclusive, more than inconclusive_limit 0; last: no data for "
        "success condition 'rate >= 0.9' (rate=no data)"
    )
    assert not result.ok


def test_run_analysis_inconclusive_within_limit() -> None:
    result, _ = run_fake([NO_DATA, GOOD], count=2, inconclusive_limit=1)

    assert result.verdict == SUCCESSFUL
    assert result.message == "2 measurements taken: 1 successful, 1 inconclusive"


def test_run_analysis_inconclusive_beyond_limit() -> None:
    result, _ = run_fake([NO_DATA, GOOD, NO_DATA, GOOD], count=4, inconclusive_limit=1)

    assert result.verdict == INCONCLUSIVE
    assert len(result.measurements) == 3


def test_run_analysis_nan_is_no_data() -> None:
    result, _ = run_fake([{"rate": math.nan}])

    assert result.verdict == INCONCLUSIVE
    assert result.measurements[0].values == {"rate": None}


def test_run_analysis_errors_do_not_count() -> None:
    result, _ = run_fake([RuntimeError("boom"), GOOD])

    assert result.verdict == SUCCESSFUL
    assert result.message == "2 measurements taken: 1 successful, 1 error"
    assert [m.verdict for m in result.measurements] == [ERROR, SUCCESSFUL]


def test_run_analysis_error_measurement_message() -> None:
    result, _ = run_fake([RuntimeError("boom"), GOOD])

    assert result.measurements[0].message == "RuntimeError: boom"
    assert result.measurements[0].values == {}


def test_run_analysis_retries_errors_after_10s_without_interval() -> None:
    clock = FakeClock(START)

    run_fake([RuntimeError("boom"), GOOD, GOOD], clock, count=2)

    assert clock.sleeps == [10.0, 60.0]


def test_run_analysis_retries_errors_after_interval_when_set() -> None:
    clock = FakeClock(START)

    run_fake([RuntimeError("boom"), GOOD], clock, interval="3s")

    assert clock.sleeps == [3.0]


def test_run_analysis_consecutive_error_limit_default_is_four() -> None:
    result, provider = run_fake([RuntimeError(f"boom {n}") for n in range(6)])

    assert result.verdict == ERROR
    assert len(result.measurements) == 5
    assert result.message == (
        "5 measurements in a row had errors, more than consecutive_error_limit 4; "
        "last: RuntimeError: boom 4"
    )
    assert len(provider.replies) == 1


def test_run_analysis_consecutive_error_limit_zero() -> None:
    result, _ = run_fake([RuntimeError("boom"), GOOD], consecutive_error_limit=0)

    assert result.verdict == ERROR
    assert len(result.measurements) == 1


def test_run_analysis_success_resets_consecutive_errors() -> None:
    boom = RuntimeError("boom")
    replies: list[Reply] = [boom, boom, GOOD, boom, boom, GOOD]

    result, _ = run_fake(replies, count=2, consecutive_error_limit=2)

    assert result.verdict == SUCCESSFUL
    assert result.message == "6 measurements taken: 2 successful, 4 errors"


def test_run_analysis_invalid_values_are_an_error() -> None:
    not_a_mapping: Reply = lambda cancel: ["not", "a", "mapping"]  # noqa: E731

    result, _ = run_fake([not_a_mapping, {"rate": {1: 2}}, {"rate": "high"}, GOOD])

    assert [m.message for m in result.measurements] == [
        "TypeError: provider 'fake' returned list, expected a mapping of metric values",
        "TypeError: provider 'fake' returned a map with the key 1 for metric 'rate', "
        "expected a number, a list, a map or no data",
        "condition 'rate >= 0.9' failed: an operator or function got values of types it "
        "does not accept",
        "success condition 'rate >= 0.9' is true (rate=1)",
    ]


def test_run_analysis_boolean_value_is_a_value() -> None:
    result, _ = run_fake([{"rate": True}], success="rate == true")

    assert result.measurements[0].verdict == SUCCESSFUL


def test_run_analysis_provider_analysis_error_ends_at_once() -> None:
    result, provider = run_fake([AnalysisError("no endpoint"), GOOD])

    assert result.verdict == ERROR
    assert result.message == "no endpoint"
    assert [m.verdict for m in result.measurements] == [ERROR]
    assert provider.replies == [GOOD]


def test_run_analysis_unknown_metric_ends_at_once() -> None:
    result, _ = run_fake([{"ratio": 1.0}, GOOD])

    assert result.verdict == ERROR
    assert result.message == (
        "condition 'rate >= 0.9' uses unknown metric 'rate' (did you mean 'ratio'?): "
        "available metrics are args, ratio, result"
    )


def test_run_analysis_timeout_cancels_measurement() -> None:
    cancelled = threading.Event()

    def hang(cancel: threading.Event) -> Any:
        cancel.wait(5)
        cancelled.set()
        return GOOD

    result, _ = run_fake([hang, GOOD], timeout="100ms")

    assert result.verdict == SUCCESSFUL
    assert result.measurements[0].verdict == ERROR
    assert result.measurements[0].message == "timed out after 100ms"
    assert cancelled.wait(2)


def test_run_analysis_cancel_during_measurement_raises() -> None:
    provider = ScriptedProvider([])
    context = make_context({"check": {"provider": "fake", "success": "rate > 0"}},
                           FakeProviderPlugin(provider))
    seen = threading.Event()

    def interrupt(cancel: threading.Event) -> Any:
        context.cancel.set()
        cancel.wait(5)
        seen.set()
        return GOOD

    provider.replies = [interrupt]

    with pytest.raises(Interrupted):
        run_analysis("check", context, stable_version="1", canary_version="2", endpoint=None)
    assert seen.wait(2)
    assert provider.closed


def test_run_analysis_cancel_during_wait_raises() -> None:
    provider = ScriptedProvider([GOOD, GOOD])
    context = make_context({"check": {"provider": "fake", "success": "rate > 0", "count": 2}},
                           FakeProviderPlugin(provider))

    def cancel_then_answer(cancel: threading.Event) -> Any:
        context.cancel.set()
        return GOOD

    provider.replies = [cancel_then_answer, GOOD]

    with pytest.raises(Interrupted):
        run_analysis("check", context, stable_version="1", canary_version="2", endpoint=None)
    assert len(provider.requests) == 1


def test_run_analysis_cancelled_before_start_raises() -> None:
    provider = ScriptedProvider([GOOD])
    context = make_context({"check": {"provider": "fake", "success": "rate > 0"}},
                           FakeProviderPlugin(provider))
    context.cancel.set()

    with pytest.raises(Interrupted):
        run_analysis("check", context, stable_version="1", canary_version="2", endpoint=None)
    assert provider.requests == []


def test_run_analysis_logs_every_measurement(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shipline")

    run_fake([GOOD, BAD], count=2, failure_limit=1)

    lines = [r.getMessage() for r in caplog.records if r.name == "shipline"]
    assert lines == [
        "analysis 'check' started: provider fake, 2 measurement(s) every 1m, canary 2, "
        "stable 1",
        "analysis 'check': measurement 1 (1 of 2 counted): successful: success condition "
        "'rate >= 0.9' is true (rate=1)",
        "analysis 'check': measurement 2 (2 of 2 counted): failed: success condition "
        "'rate >= 0.9' is false (rate=0.5)",
        "analysis 'check' successful: 2 measurements taken: 1 successful, 1 failed",
    ]


def test_run_analysis_inline_mapping() -> None:
    provider = ScriptedProvider([GOOD])
    context = make_context({}, FakeProviderPlugin(provider))

    result = run_analysis(
        {"provider": "fake", "success": "rate > 0"}, context,
        stable_version=None, canary_version="2", endpoint=None,
    )

    assert result.name == "inline fake"
    assert result.verdict == SUCCESSFUL


def test_run_analysis_unknown_template_is_an_error() -> None:
    context = make_context({"error-rate": {"provider": "fake", "success": "rate > 0"}})

    result = run_analysis("eror-rate", context, stable_version=None, canary_version="2",
                          endpoint=None)

    assert result == AnalysisResult(
        "eror-rate", ERROR,
        "analysis template 'eror-rate' is not defined under 'analyses:' "
        "(did you mean 'error-rate'?)",
        action="abort",
    )


def test_run_analysis_unknown_provider_is_an_error() -> None:
    context = make_context({"check": {"provider": "nope", "success": "rate > 0"}})

    result = run_analysis("check", context, stable_version=None, canary_version="2",
                          endpoint=None)

    assert result.verdict == ERROR
    assert result.message == "analysis 'check': no plugin provides analysis provider 'nope'"


def test_run_analysis_invalid_options_are_an_error() -> None:
    context = make_context({"check": {"provider": "fake", "success": "rate >"}})

    result = run_analysis("check", context, stable_version=None, canary_version="2",
                          endpoint=None)

    assert result.verdict == ERROR
    assert result.message == "invalid condition 'rate >': CEL syntax error at column 6"


# -- judging -----------------------------------------------------------------------------


def conditions(*texts: str) -> list[Any]:
    return [compile_condition(text) for text in texts]


@pytest.mark.parametrize(
    ("value", "success", "failure", "verdict", "message"),
    [
        (1.0, ["x > 0.5"], [], SUCCESSFUL, "success condition 'x > 0.5' is true (x=1)"),
        (0.1, ["x > 0.5"], [], FAILED, "success condition 'x > 0.5' is false (x=0.1)"),
        (1.0, [], ["x < 0.5"], SUCCESSFUL, "no failure condition is true (x=1)"),
        (0.1, [], ["x < 0.5"], FAILED, "failure condition 'x < 0.5' is true (x=0.1)"),
        (0.9, ["x > 0.8"], ["x < 0.5"], SUCCESSFUL,
         "success condition 'x > 0.8' is true (x=0.9)"),
        (0.6, ["x > 0.8"], ["x < 0.5"], INCONCLUSIVE,
         "success condition 'x > 0.8' is false and no failure condition is true (x=0.6)"),
        (0.1, ["x < 0.8"], ["x < 0.5"], FAILED, "failure condition 'x < 0.5' is true (x=0.1)"),
        (None, ["x > 0.5"], [], INCONCLUSIVE,
         "no data for success condition 'x > 0.5' (x=no data)"),
        (None, [], ["x < 0.5"], INCONCLUSIVE,
         "no data for failure condition 'x < 0.5' (x=no data)"),
    ],
)
def test_judge_rules(
    value: float | None, success: list[str], failure: list[str], verdict: str, message: str
) -> None:
    judgement = judge({"x": value}, conditions(*success), conditions(*failure))

    assert (judgement.verdict, judgement.message) == (verdict, message)
    assert judgement.no_data is (value is None)


def test_judge_success_list_needs_all() -> None:
    values = {"a": 1.0, "b": 5.0}

    verdict, message, _ = judge(values, conditions("a > 0", "b < 2"), [])

    assert verdict == FAILED
    assert message == "success condition 'b < 2' is false (a=1, b=5)"


def test_judge_success_list_all_true() -> None:
    verdict, message, _ = judge({"a": 1.0, "b": 1.0}, conditions("a > 0", "b < 2"), [])

    assert verdict == SUCCESSFUL
    assert message == "success conditions 'a > 0' and 'b < 2' are true (a=1, b=1)"


def test_judge_failure_list_needs_any() -> None:
    verdict, message, _ = judge({"a": 1.0, "b": 5.0}, [], conditions("a > 2", "b > 2"))

    assert verdict == FAILED
    assert message == "failure condition 'b > 2' is true (a=1, b=5)"


def test_judge_false_beats_no_data_in_success_list() -> None:
    verdict, _, _ = judge({"a": None, "b": 5.0}, conditions("a > 0", "b < 2"), [])

    assert verdict == FAILED


def test_judge_true_failure_beats_no_data() -> None:
    verdict, _, _ = judge({"a": None, "b": 5.0}, conditions("a > 0"), conditions("b > 2"))

    assert verdict == FAILED


def test_judge_unknown_metric_raises() -> None:
    with pytest.raises(ConditionError):
        judge({"a": 1.0}, conditions("b > 0"), [])


# -- settings, references and estimates --------------------------------------------------


def test_settings_defaults() -> None:
    settings = AnalysisSettings.from_options("a", {"provider": "fake", "success": "x > 0"})

    assert (settings.interval, settings.count, settings.initial_delay) == (60.0, 1, 0.0)
    assert (settings.failure_limit, settings.inconclusive_limit) == (0, 0)
    assert settings.consecutive_error_limit == 4
    assert settings.timeout == 60.0
    assert settings.interval_set is False


def test_settings_parse_durations_and_lists() -> None:
    settings = AnalysisSettings.from_options("a", {
        "provider": "fake", "interval": "1m30s", "initial_delay": 2, "timeout": "500ms",
        "success": ["x > 0", "y < 1"], "failure": "z > 3",
    })

    assert (settings.interval, settings.initial_delay, settings.timeout) == (90.0, 2.0, 0.5)
    assert [c.text for c in settings.success] == ["x > 0", "y < 1"]
    assert [c.text for c in settings.failure] == ["z > 3"]


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"success": "x > 0"}, "provider", "analysis 'a' has no 'provider'"),
        ({"provider": "fake"}, None,
         "analysis 'a' has no 'success' or 'failure' condition, so it could never fail: "
         "add one, for example success: \"result < 0.01\""),
        ({"provider": "fake", "success": "x >"}, "success",
         "invalid condition 'x >': CEL syntax error at column 3"),
        ({"provider": "fake", "failure": ["x > 1", 3]}, "failure",
         "invalid 'failure': expected a condition or a list of conditions, got ['x > 1', 3]"),
        ({"provider": "fake", "success": "x > 0", "count": 0}, "count",
         "invalid 'count': expected an integer of 1 or more, got 0"),
        ({"provider": "fake", "success": "x > 0", "failure_limit": True}, "failure_limit",
         "invalid 'failure_limit': expected an integer of 0 or more, got True"),
        ({"provider": "fake", "success": "x > 0", "interval": "soon"}, "interval",
         "invalid 'interval': 'soon' is not a valid duration: use a number of seconds or a "
         "value like 500ms, 30s, 5m, 1h"),
    ],
)
def test_settings_errors(options: dict[str, Any], key: str | None, message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        AnalysisSettings.from_options("a", options)

    assert str(caught.value) == message
    assert caught.value.key == key


def test_resolve_analysis_template() -> None:
    template = {"provider": "fake"}

    assert resolve_analysis("t", {"t": template}) == ("t", template, {})


def test_resolve_analysis_lists_templates_without_close_match() -> None:
    with pytest.raises(AnalysisError) as caught:
        resolve_analysis("zzz", {"error-rate": {}, "latency": {}})

    assert str(caught.value) == (
        "analysis template 'zzz' is not defined under 'analyses:'; defined templates: "
        "error-rate, latency"
    )


def test_resolve_analysis_without_templates() -> None:
    with pytest.raises(AnalysisError) as caught:
        resolve_analysis("zzz", {})

    assert str(caught.value) == (
        "analysis template 'zzz' is not defined under 'analyses:', which defines no templates"
    )


def test_estimate_analysis_defaults() -> None:
    context = make_context({"t": {"provider": "fake", "success": "x > 0"}})

    # 1 counted measurement after up to 4 errors: 5 timeouts of 60 s, 4 retries after 10 s,
    # then the default on_inconclusive pause of 1 h.
    assert estimate_analysis("t", context.plan) == 5 * 60 + 4 * 10 + 3600


def test_estimate_analysis_with_options() -> None:
    context = make_context({})
    inline = {
        "provider": "fake", "success": "x > 0", "count": 3, "interval": "30s",
        "initial_delay": "1m", "timeout": "5s", "consecutive_error_limit": 0,
        "on_inconclusive": "abort",
    }

    assert estimate_analysis(inline, context.plan) == 60 + 3 * 5 + 2 * 30


def test_estimate_analysis_unknown_template_raises() -> None:
    context = make_context({})

    with pytest.raises(AnalysisError):
        estimate_analysis("missing", context.plan)


def test_result_details_and_data() -> None:
    result = AnalysisResult("a", FAILED, "m", [
        Measurement(START, {"x": 1.0}, SUCCESSFUL, "ok"),
        Measurement(START + 61, {"x": None}, INCONCLUSIVE, "no data"),
    ])

    assert result.details() == (
        "1. 2027-01-15T08:00:00Z successful: ok\n2. 2027-01-15T08:01:01Z inconclusive: no data"
    )
    assert result.to_data()["measurements"][1] == {
        "time": START + 61, "values": {"x": None}, "verdict": INCONCLUSIVE, "message": "no data",
        "no_data": False, "counted": True,
    }


# -- schema and validate-time checks -----------------------------------------------------


def test_common_properties_have_titles_and_descriptions() -> None:
    for name, schema in COMMON_ANALYSIS_PROPERTIES.items():
        assert schema.get("title"), name
        assert schema.get("description"), name


def test_analysis_ref_schema_accepts_name_and_inline() -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(ANALYSIS_REF_SCHEMA)

    assert validator.is_valid("error-rate")
    assert validator.is_valid({"provider": "probe", "count": 2, "requests": 5})
    assert not validator.is_valid({"count": 2})
    assert not validator.is_valid({"provider": "probe", "count": 0})


def canary_stage(*analysis_refs: Any) -> Stage:
    options = {"version": "2", "steps": [{"set_weight": 20}, *({"analysis": ref} for ref in
                                                                 analysis_refs)]}
    step = Step(
        id="prod/1", name="deploy", kind="deploy", type="canary", options=freeze(options),
        plugin="canary", stage="prod", mark=Mark("shipline.yml", 20, 9),
        path=("stages", 0, "steps", 0),
    )
    return Stage(name="prod", steps=(step,), environment="production")


def check(analyses: Mapping[str, Any], *refs: Any) -> list[str]:
    registry_context = make_context(analyses, stages=[canary_stage(*refs)])
    registry = registry_context.config.registry
    registry.import_and_register("pipeline.builtin.probe", name="probe", origin="built-in")
    return [d.format() for d in check_analyses(registry_context.plan, registry_context.config)]


def test_check_analyses_unknown_template_in_canary() -> None:
    found = check({"error-rate": {"provider": "probe", "success": "success_rate > 0.9"}},
                  "eror-rate")

    assert found == [
        "shipline.yml:20:9: stages[0].steps[0].deploy.steps[1].analysis: analysis template "
        "'eror-rate' is not defined under 'analyses:' (did you mean 'error-rate'?)"
    ]


def test_check_analyses_known_template_passes() -> None:
    found = check({"error-rate": {"provider": "probe", "success": "success_rate > 0.9"}},
                  "error-rate", "error-rate")

    assert found == []


def test_check_analyses_invalid_template_condition() -> None:
    found = check({"error-rate": {"provider": "probe", "success": "success_rate >"}})

    assert found == [
        "analyses.error-rate.success: invalid condition 'success_rate >': CEL syntax error "
        "at column 14"
    ]


def test_check_analyses_unknown_function() -> None:
    found = check({"error-rate": {"provider": "probe", "success": "defualt(result, 0.0) < 1"}})

    assert found == [
        "analyses.error-rate.success: invalid condition 'defualt(result, 0.0) < 1': unknown "
        "function 'defualt' (did you mean 'default'?); the helpers for no data are no_data, "
        "is_nan, default"
    ]


def test_check_analyses_template_without_condition() -> None:
    found = check({"error-rate": {"provider": "probe"}})

    assert found == [
        "analyses.error-rate: analysis 'error-rate' has no 'success' or 'failure' "
        "condition, so it could never fail: add one, for example success: "
        "\"result < 0.01\""
    ]


def test_check_analyses_inline_condition() -> None:
    found = check({}, {"provider": "probe", "failure": "error_rate >> 1"})

    assert found == [
        "shipline.yml:20:9: stages[0].steps[0].deploy.steps[1].analysis.failure: invalid "
        "condition 'error_rate >> 1': CEL syntax error at column 13"
    ]


def test_check_analyses_inline_provider_options() -> None:
    found = check({}, {"provider": "probe", "success": "success_rate > 0.9", "concurrency": 0,
                       "reqests": 5})

    assert found == [
        "shipline.yml:20:9: stages[0].steps[0].deploy.steps[1].analysis: unknown key "
        "'reqests' (did you mean 'requests'?)",
        "shipline.yml:20:9: stages[0].steps[0].deploy.steps[1].analysis.concurrency: 0 is "
        "less than the minimum of 1",
    ]


def test_check_analyses_inline_unknown_provider() -> None:
    found = check({}, {"provider": "prometheus", "success": "x > 0.9", "query": "up"})

    assert found == [
        "shipline.yml:20:9: stages[0].steps[0].deploy.steps[1].analysis.provider: "
        "'prometheus' is not one of ['probe']"
    ]


def test_check_analyses_ignores_other_strategies() -> None:
    stage = canary_stage("missing")
    step = stage.steps[0]
    rolling = Step(id=step.id, name=step.name, kind="deploy", type="rolling",
                   options=step.options, plugin="rolling", stage="prod")
    context = make_context({}, stages=[Stage(name="prod", steps=(rolling,))])

    assert check_analyses(context.plan, context.config) == []
