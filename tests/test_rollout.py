"""Tests of the machinery shared by the deploy strategies (pipeline.rollout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers.httpserver import HttpServer, Reply
from helpers.memorytarget import (
    MemoryPlugin,
    MemoryRouter,
    MemoryTarget,
    make_context,
    make_plan,
    make_registry,
    make_step,
)
from pipeline.clock import FakeClock
from pipeline.context import RollbackFailed
from pipeline.plan import freeze
from pipeline.rollout import (
    MAX_REPORT_OUTPUT,
    HealthPolicy,
    InstanceState,
    InstanceTable,
    OptionError,
    Rollout,
    batch_sizes,
    environment_instance_count,
    format_table,
    instances_for_weight,
    mentions,
    option_diagnostics,
    parse_amount,
    removal_failure,
    remove_version,
    resolve_router,
    restore_previous,
    run_checks,
    run_parallel,
    serving_instances,
    split_batches,
    wait_healthy,
)
from pipeline.rolloutparallel import started_pool
from pipeline.target import Capability

WEB = [f"web-{n}" for n in range(1, 11)]


# -- counts and percentages --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, True, 3),
        ("3", 10, True, 3),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("10%", 30, True, 3),
        ("10%", 30, False, 3),
        ("12.5%", 8, False, 1),
        ("100%", 7, False, 7),
        ("0%", 7, True, 0),
        ("1%", 7, True, 1),
    ],
)
def test_parse_amount_values(value: object, total: int, round_up: bool, expected: int) -> None:
    assert parse_amount(value, total, option="batch", round_up=round_up) == expected


@pytest.mark.parametrize(
    ("value", "allow_zero", "message"),
    [
        ("150%", True, "batch: '150%' is not valid: use 0% up to 100%"),
        ("0%", False, "batch: '0%' is not valid: use more than 0% up to 100%"),
        (0, False, "batch: 0 is not valid: use 1 or more"),
        (-1, True, "batch: -1 is not valid: use 0 or more"),
        ("half", True,
         "batch: 'half' is not valid: use a count such as 3 or a percentage such as '25%'"),
        (True, True,
         "batch: True is not valid: use a count such as 3 or a percentage such as '25%'"),
        (1.5, True,
         "batch: 1.5 is not valid: use a count such as 3 or a percentage such as '25%'"),
    ],
)
def test_parse_amount_invalid(value: object, allow_zero: bool, message: str) -> None:
    with pytest.raises(OptionError) as raised:
        parse_amount(value, 10, option="batch", round_up=True, allow_zero=allow_zero)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("total", "batch", "expected"),
    [
        (10, 1, [1] * 10),
        (10, 3, [3, 3, 3, 1]),
        (10, "25%", [3, 3, 3, 1]),
        (10, [1, "10%", "50%"], [1, 1, 5, 3]),
        (10, (2,), [2, 2, 2, 2, 2]),
        (3, "1%", [1, 1, 1]),
        (4, 10, [4]),
        (0, 2, []),
    ],
)
def test_batch_sizes_plans(total: int, batch: object, expected: list[int]) -> None:
    assert batch_sizes(total, batch) == expected


def test_batch_sizes_empty_list() -> None:
    with pytest.raises(OptionError) as raised:
        batch_sizes(10, [])
    assert str(raised.value) == "batch: the list is empty: give at least one batch size"


def test_batch_sizes_names_list_entry() -> None:
    with pytest.raises(OptionError) as raised:
        batch_sizes(10, [1, "200%"])
    assert str(raised.value) == "batch[1]: '200%' is not valid: use more than 0% up to 100%"


def test_split_batches_keeps_order() -> None:
    assert split_batches(WEB[:5], [1, "40%"]) == [["web-1"], ["web-2", "web-3"], ["web-4",
                                                                                  "web-5"]]


@pytest.mark.parametrize(
    ("weight", "total", "expected"),
    [(0, 10, 0), (1, 10, 1), (20, 10, 2), (25, 10, 3), (50, 3, 2), (100, 3, 3), (99, 3, 3)],
)
def test_instances_for_weight_rounds_up(weight: int, total: int, expected: int) -> None:
    assert instances_for_weight(weight, total) == expected


def test_instances_for_weight_rejects_above_100() -> None:
    with pytest.raises(OptionError) as raised:
        instances_for_weight(101, 3)
    assert str(raised.value) == "set_weight: 101 is not valid: use 0 to 100"


# -- parallel calls ----------------------------------------------------------------------


def test_run_parallel_keeps_order() -> None:
    assert run_parallel([3, 1, 2], lambda n: n * 10, workers=3) == [30, 10, 20]


def test_run_parallel_bounds_concurrency() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    run_parallel(list(range(12)), work, workers=4)
    assert peak == 4


def test_run_parallel_drops_pending_after_error() -> None:
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("boom")
        time.sleep(0.02)
        return n

    with pytest.raises(ValueError, match="boom"):
        run_parallel(list(range(50)), work, workers=2)
    assert len(started) < 50


def test_run_parallel_reuses_pool_threads() -> None:
    names: set[str] = set()

    def work(_: int) -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.01)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="lender") as pool:
        run_parallel(list(range(8)), work, workers=4, pool=pool)
        run_parallel(list(range(8)), work, workers=2, pool=pool)
    assert len(names) == 4
    assert all(name.startswith("lender") for name in names)


def test_started_pool_starts_threads() -> None:
    before = {thread.name for thread in threading.enumerate()}

    pool = started_pool(6, "prestarted")
    try:
        started = {thread.name for thread in threading.enumerate()} - before
        names: set[str] = set()
        release = threading.Barrier(6)

        def work(_: int) -> None:
            names.add(threading.current_thread().name)
            release.wait(timeout=5)

        run_parallel(list(range(6)), work, workers=6, pool=pool)
    finally:
        pool.shutdown()

    assert len(started) == 6
    assert all(name.startswith("prestarted") for name in started)
    assert names == started


def test_started_pool_thread_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The third thread is refused, as the system does when it has no more threads to give.
    submitted = 0
    submit = ThreadPoolExecutor.submit

    def fail_third(self: ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        nonlocal submitted
        submitted += 1
        if submitted == 3:
            raise RuntimeError("can't start new thread")
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", fail_third)
    before = threading.active_count()

    with pytest.raises(RuntimeError, match="can't start new thread"):
        started_pool(5, "refused")

    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# -- health ------------------------------------------------------------------------------


def test_health_policy_parse_defaults() -> None:
    assert HealthPolicy.parse(None) == HealthPolicy(True, 60.0, 5, 2.0)


def test_health_policy_parse_values() -> None:
    policy = HealthPolicy.parse(freeze({"timeout": "5m", "retries": 2, "interval": "500ms"}))
    assert policy == HealthPolicy(True, 300.0, 2, 0.5)


def test_health_policy_parse_false_disables() -> None:
    assert HealthPolicy.parse(False).enabled is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"retries": -1}, "health.retries: -1 is not valid: use 0 or more"),
        ({"timeout": "soon"},
         "health.timeout: 'soon' is not a valid duration: use a number of seconds or a "
         "value like 500ms, 30s, 5m, 1h"),
        ("yes", "health: expected a mapping or false"),
    ],
)
def test_health_policy_parse_invalid(value: object, message: str) -> None:
    with pytest.raises(OptionError) as raised:
        HealthPolicy.parse(value)
    assert str(raised.value) == message


def test_wait_healthy_passes_after_retries() -> None:
    target = MemoryTarget(["web-1"])
    target.fail("health", "web-1", times=2, message="503")
    context = make_context(target)
    result = wait_healthy(target, "web-1", HealthPolicy(retries=3, interval=2.0), context)
    assert result.ok
    assert result.message == "healthy after 3 attempts"
    assert len(target.operations("health")) == 3


def test_wait_healthy_gives_up_after_retries() -> None:
    target = MemoryTarget(["web-1"])
    target.fail("health", "web-1", message="status 503", output="Service Unavailable")
    clock = FakeClock()
    context = make_context(target, clock=clock)
    result = wait_healthy(target, "web-1", HealthPolicy(retries=3, interval=2.0), context)
    assert not result.ok
    assert result.message == "health check failed 4 times: status 503"
    assert result.output == "Service Unavailable"
    assert clock.sleeps == [2.0, 2.0, 2.0]


def test_wait_healthy_gives_up_at_timeout() -> None:
    target = MemoryTarget(["web-1"])
    target.fail("health", "web-1", message="status 503")
    context = make_context(target)
    policy = HealthPolicy(timeout=5.0, retries=100, interval=2.0)
    result = wait_healthy(target, "web-1", policy, context)
    assert result.message == "not healthy within 5s (3 attempts): status 503"


def test_wait_healthy_stops_when_cancelled() -> None:
    target = MemoryTarget(["web-1"])
    target.fail("health", "web-1")
    context = make_context(target)
    context.cancel.set()
    result = wait_healthy(target, "web-1", HealthPolicy(), context)
    assert result.message == "cancelled while waiting to be healthy"
    assert len(target.operations("health")) == 1


def test_wait_healthy_disabled_calls_nothing() -> None:
    target = MemoryTarget(["web-1"])
    result = wait_healthy(target, "web-1", HealthPolicy(enabled=False), make_context(target))
    assert result.ok
    assert target.calls == []


# -- router and instances ----------------------------------------------------------------


def test_resolve_router_prefers_environment_router() -> None:
    target = MemoryTarget(slots={"blue": ["b1"], "green": ["g1"]}, weights=True)
    router = MemoryRouter(target, [Capability.WEIGHTS])
    assert resolve_router(make_context(target, router=router)) is router


def test_resolve_router_uses_routing_target() -> None:
    target = MemoryTarget(slots={"blue": ["b1"], "green": ["g1"]})
    assert resolve_router(make_context(target)) is target


def test_resolve_router_none_for_plain_target() -> None:
    target = MemoryTarget(["web-1"])
    assert resolve_router(make_context(target)) is None


def test_serving_instances_active_slot() -> None:
    target = MemoryTarget(slots={"blue": ["b1", "b2"], "green": ["g1", "g2"]}, active="green")
    assert serving_instances(target, target) == ["g1", "g2"]


def test_serving_instances_without_router() -> None:
    target = MemoryTarget(slots={"blue": ["b1"], "green": ["g1"]})
    assert serving_instances(target, None) == ["b1", "g1"]


# -- the record of instances -------------------------------------------------------------


def test_instance_table_render() -> None:
    table = InstanceTable()
    table.update("web-1", before="1.0", after="2.0", result="updated")
    table.update("web-10", before=None, after="1.0", result="failed", message="exit 1")
    assert table.render() == (
        "instance  before  after  result\n"
        "web-1     1.0     2.0    updated\n"
        "web-10    ?       1.0    failed: exit 1"
    )


def test_instance_table_render_slots() -> None:
    table = InstanceTable()
    table.update("b1", slot="blue", before="1.0", result="removed")
    assert table.render() == (
        "instance  slot  before  after  result\n"
        "b1        blue  1.0     -      removed"
    )


def test_instance_table_update_many_get_all() -> None:
    table = InstanceTable()
    table.update("web-2", result="pending")

    table.update_many([("web-3", {"before": "1.0"}), ("web-2", {"before": "0.9"}),
                       ("web-1", {"before": None, "result": "updated"})])
    states = table.get_all(["web-1", "web-2"])
    states[0].result = "changed in the copy only"

    assert [state.instance for state in table.rows()] == ["web-2", "web-3", "web-1"]
    assert [(state.before, state.result) for state in states] == [
        (None, "changed in the copy only"), ("0.9", "pending")]
    assert table.get("web-1").result == "updated"
    with pytest.raises(KeyError):
        table.get_all(["web-1", "web-9"])


def test_instance_table_output_keeps_tail() -> None:
    table = InstanceTable()
    table.add_output("web-1", "deploy", "first\n" + "x" * MAX_REPORT_OUTPUT)
    table.add_output("web-2", "deploy", "last line")
    output = table.output()
    assert output.startswith("[earlier output dropped]\n")
    assert output.endswith("--- web-2: deploy ---\nlast line\n")
    assert "first" not in output


def test_instance_table_output_skips_blank() -> None:
    table = InstanceTable()
    table.add_output("web-1", "deploy", "  \n")
    assert table.output() == ""


def test_format_table_pads_columns() -> None:
    assert format_table(["a", "bb"], [["ccc", "d"]]) == "a    bb\nccc  d"


# -- rollback helpers --------------------------------------------------------------------


def states(*rows: tuple[str, str | None, bool]) -> list[InstanceState]:
    return [InstanceState(name, before=before, touched=touched) for name, before, touched in rows]


def test_restore_previous_restores_touched() -> None:
    target = MemoryTarget(["web-1", "web-2", "web-3"], version="2.0")
    summary = restore_previous(
        target, states(("web-1", "1.0", True), ("web-2", "1.1", True), ("web-3", "1.0", False)),
        fallback=None, cancel=threading.Event(),
    )
    assert summary == "restored the previous version (1.0, 1.1) on 2 instances"
    assert target.versions == {"web-1": "1.0", "web-2": "1.1", "web-3": "2.0"}


def test_restore_previous_uses_fallback() -> None:
    target = MemoryTarget(["web-1"], version="2.0")
    restore_previous(target, states(("web-1", None, True)), fallback="0.9",
                     cancel=threading.Event())
    assert target.versions == {"web-1": "0.9"}


def test_restore_previous_unknown_version_fails() -> None:
    target = MemoryTarget(["web-1", "web-2"], version="2.0")
    with pytest.raises(RollbackFailed) as raised:
        restore_previous(target, states(("web-1", None, True), ("web-2", "1.0", True)),
                         fallback=None, cancel=threading.Event())
    assert str(raised.value) == "1 of 2 instances could not be restored to their previous version"
    assert raised.value.details == (
        "instance  expected  running  result\n"
        "web-1     ?         2.0      previous version unknown: set 'previous_version' on the "
        "step\n"
        "web-2     1.0       1.0      restored"
    )


def test_restore_previous_failed_deploy_fails() -> None:
    target = MemoryTarget(["web-1", "web-2"], version="2.0")
    target.fail("deploy", "web-2", "1.0", message="disk full")
    with pytest.raises(RollbackFailed) as raised:
        restore_previous(target, states(("web-1", "1.0", True), ("web-2", "1.0", True)),
                         fallback=None, cancel=threading.Event())
    assert raised.value.details.splitlines()[2] == (
        "web-2     1.0       2.0      restore failed: disk full"
    )


def test_remove_version_and_failure_table() -> None:
    target = MemoryTarget(["g1", "g2"], version="2.0")
    target.fail("remove", "g2", message="busy")
    results = remove_version(target, ["g1", "g2"], "2.0", cancel=threading.Event())
    failure = removal_failure(target, results, "2.0")
    assert failure is not None
    assert str(failure) == "1 of 2 instances still run 2.0: removing it failed"
    assert failure.details == (
        "instance  running  result\n"
        "g1        ?        removed\n"
        "g2        2.0      remove failed: busy"
    )


def test_removal_failure_none_when_all_removed() -> None:
    target = MemoryTarget(["g1"], version="2.0")
    results = remove_version(target, ["g1"], "2.0", cancel=threading.Event())
    assert removal_failure(target, results, "2.0") is None


# -- checks ------------------------------------------------------------------------------


def test_mentions_finds_placeholder() -> None:
    assert mentions(freeze({"http": {"url": "http://{instance}:80/"}}), "instance")


def test_mentions_ignores_literal_braces() -> None:
    assert not mentions({"command": "echo {{instance}}"}, "instance")


def test_run_checks_per_instance_and_once(tmp_path: Path) -> None:
    target = MemoryTarget(WEB[:3])
    context = make_context(target, plan_file=tmp_path / "shipline.yml")
    specs = [
        {"command": "test {instance} != web-2"},
        {"command": "test {version} = 2.0"},
    ]
    runs = run_checks(specs, context, instances=WEB[:3], placeholders={"version": "2.0"},
                      workers=4)
    assert [(run.instance, run.ok) for run in runs] == [
        ("web-1", True), ("web-2", False), ("web-3", True), (None, True),
    ]
    assert runs[0].label == "check 1 (test {instance} != web-2)"


def test_run_checks_http(tmp_path: Path) -> None:
    with HttpServer() as server:
        server.route("/healthz", Reply(200, "ok"))
        server.route("/broken", Reply(503, "down"))
        context = make_context(MemoryTarget([]), plan_file=tmp_path / "shipline.yml")
        specs = [{"http": {"url": server.url("/healthz")}},
                 {"http": {"url": server.url("/broken"), "retries": 0}}]
        runs = run_checks(specs, context, instances=[], placeholders={}, workers=2)
    assert [run.ok for run in runs] == [True, False]


def test_run_checks_unknown_placeholder(tmp_path: Path) -> None:
    context = make_context(MemoryTarget([]), plan_file=tmp_path / "shipline.yml")
    runs = run_checks([{"command": "echo {colour}"}], context, instances=[], placeholders={},
                      workers=1)
    assert not runs[0].ok
    assert runs[0].message.startswith("check 1 (echo {colour}): ")


# -- rollout -----------------------------------------------------------------------------


def test_rollout_update_instances_skips_current_version() -> None:
    target = MemoryTarget(["web-1"], version="2.0")
    context = make_context(target)
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), context)
    rollout.update_instances(["web-1"], HealthPolicy(), workers=2)
    assert rollout.table.get("web-1").result == "unchanged"
    assert target.operations("deploy") == []


def test_rollout_update_instances_records_failure() -> None:
    target = MemoryTarget(["web-1", "web-2"])
    target.fail("deploy", "web-1", message="exit status 2", output="no space left")
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), make_context(target))
    failed: list[str] = []
    rollout.update_instances(["web-1", "web-2"], HealthPolicy(), workers=2,
                             on_failure=failed.append)
    assert failed == ["web-1"]
    assert rollout.table.get("web-2").result == "updated"
    state = rollout.table.get("web-1")
    assert (state.before, state.after, state.result, state.touched) == ("1.0", "1.0", "failed",
                                                                         True)
    assert state.message == "deploy failed: exit status 2"
    assert rollout.table.output() == "--- web-1: deploy ---\nno space left\n"


class SlowReads(MemoryTarget):
    """Reads each version in 5 ms, as a command or a request would."""

    def version(self, instance: str) -> str | None:
        time.sleep(0.005)
        return super().version(instance)


def _version_threads(target: MemoryTarget) -> set[str]:
    return {call.thread for call in target.operations("version")}


def test_rollout_read_versions_fast_target_reads_inline() -> None:
    target = MemoryTarget(["web-1", "web-2", "web-3"])
    target.versions["web-2"] = "0.9"
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), make_context(target))

    rollout.read_versions(["web-1", "web-2", "web-3"], workers=3)

    assert _version_threads(target) == {threading.current_thread().name}
    assert [(state.before, state.after) for state in rollout.table.rows()] == [
        ("1.0", "1.0"), ("0.9", "0.9"), ("1.0", "1.0")]


def test_rollout_read_versions_slow_target_reads_in_parallel() -> None:
    target = SlowReads(["web-1", "web-2", "web-3", "web-4"])
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), make_context(target))

    rollout.read_versions(["web-1", "web-2", "web-3", "web-4"], workers=3)

    assert len(_version_threads(target)) > 1
    assert [state.before for state in rollout.table.rows()] == ["1.0"] * 4


class JournalSpy:
    """Stands in for a run's state store: keeps the journal writes of record_changes."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str | None, list[tuple[tuple[str, ...], dict[str, Any]]]]] = []
        self.done = 0

    def record_changes(self, step: Any, operation: str, version: str | None,
                       changes: Any) -> Callable[[], None]:
        self.writes.append((operation, version,
                            [(tuple(names), dict(details)) for names, details in changes]))

        def done() -> None:
            self.done += 1

        return done

    def resumed_version(self, environment: str, instance: str) -> str | None:
        return None


def test_rollout_update_instances_journals_once_per_version_before() -> None:
    target = MemoryTarget(["web-1", "web-2", "web-3", "web-4"])
    target.versions.update({"web-2": "0.9", "web-4": "2.0"})
    context = make_context(target)
    spy = JournalSpy()
    context.state = spy  # type: ignore[assignment]
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), context)

    rollout.update_instances(["web-1", "web-2", "web-3", "web-4"], HealthPolicy(), workers=4)

    # One write for the batch, before any deploy; web-4 runs 2.0 already.
    assert spy.writes == [("deploy", "2.0", [
        (("web-1", "web-3"), {"before": "1.0", "slot": None}),
        (("web-2",), {"before": "0.9", "slot": None}),
    ])]
    assert spy.done == 1
    assert sorted(call.instance for call in target.operations("deploy")) == [
        "web-1", "web-2", "web-3"]


def test_rollout_update_instances_after_stop_changes_nothing() -> None:
    target = MemoryTarget(["web-1"])
    context = make_context(target)
    spy = JournalSpy()
    context.state = spy  # type: ignore[assignment]
    rollout = Rollout.start(make_step("rolling", {"version": "2.0"}), context)
    stop = threading.Event()
    stop.set()

    rollout.update_instances(["web-1"], HealthPolicy(), workers=1, stop=stop)

    assert spy.writes == []
    assert target.operations("deploy") == []


# -- plan-time helpers -------------------------------------------------------------------


def test_environment_instance_count_forms() -> None:
    step = make_step("rolling", {"version": "2.0"})
    listed = make_plan([step], target={"type": "command", "instances": ["a", "b", "c"]})
    counted = make_plan([step], target={"type": "local", "instances": 4})
    slotted = make_plan([step], target={"type": "command",
                                        "slots": {"blue": ["b1", "b2"], "green": ["g1"]}})
    unknown = make_plan([step], target={"type": "command", "instances_command": "ls"})
    assert environment_instance_count(listed, step) == 3
    assert environment_instance_count(counted, step) == 4
    assert environment_instance_count(slotted, step) == 2
    assert environment_instance_count(unknown, step) is None


def test_option_diagnostics_reports_invalid_options() -> None:
    step = make_step("rolling", {"version": "2.0", "batch": "150%"})
    plan = make_plan([step])

    def parse(checked: object) -> None:
        parse_amount(step.options["batch"], 100, option="batch", round_up=True)

    diagnostics = option_diagnostics(plan, "rolling", parse)
    # The diagnostic points at the option, whose line validate looks up from the path.
    assert [(d.path, d.mark, d.message) for d in diagnostics] == [
        ((*step.path, "deploy", "batch"), None, "'150%' is not valid: use 0% up to 100%"),
    ]


def test_option_diagnostics_points_at_step_for_other_messages() -> None:
    step = make_step("rolling", {"version": "2.0", "batch": 1})
    plan = make_plan([step])

    def parse(checked: object) -> None:
        raise OptionError("max_unavailable and max_surge are both 0: raise one of them")

    [diagnostic] = option_diagnostics(plan, "rolling", parse)
    assert diagnostic.path == (*step.path, "deploy")
    assert diagnostic.message == "max_unavailable and max_surge are both 0: raise one of them"


def test_make_registry_builds() -> None:
    registry = make_registry(MemoryPlugin(MemoryTarget([])))
    assert registry.pluginmanager.has_plugin("rolling")
