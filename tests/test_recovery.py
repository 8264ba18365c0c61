"""Reading a deployment's journal into what a recovery must undo."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pipeline.recovery import undo_plan
from pipeline.state import JournalEntry

MOMENT = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc)


def _entry(seq: int, operation: str, instances: tuple[str, ...], **details: Any) -> JournalEntry:
    return JournalEntry("d1", seq, "release", "release/1", operation, instances, "1.1.0",
                        MOMENT, details=details)


def test_undo_plan_first_before_wins() -> None:
    plan = undo_plan([
        _entry(1, "deploy", ("web-1",), before="1.0.0", slot=None),
        _entry(2, "deploy", ("web-1",), before="1.1.0", slot=None),
        _entry(3, "deploy", ("web-2",), before=None, slot=None),
    ])

    assert [(s.instance, s.before, s.touched) for s in plan.restore] == [
        ("web-1", "1.0.0", True), ("web-2", None, True)]
    assert plan.remove == []
    assert not plan.switched
    assert plan.weighted_slot is None


def test_undo_plan_empty_idle_slot_removed() -> None:
    plan = undo_plan([
        _entry(1, "deploy", ("green-1",), before=None, slot="green"),
        _entry(2, "deploy", ("green-2",), before="0.9.0", slot="green"),
        _entry(3, "set_weight", ("green-1", "green-2"), slot="green", weight=20,
               active="blue"),
        _entry(4, "switch", ("green-1", "green-2"), slot="green", active="blue"),
        _entry(5, "switch", ("green-1", "green-2"), slot="blue", active="green"),
    ])

    assert plan.remove == ["green-1"]
    assert [(s.instance, s.before, s.slot) for s in plan.restore] == [
        ("green-2", "0.9.0", "green")]
    assert plan.switched
    assert plan.switch_back_to == "blue"
    assert plan.weighted_slot == "green"
    assert plan.instances == ["green-2", "green-1"]


def test_undo_plan_nothing_changed() -> None:
    plan = undo_plan([])

    assert plan.empty
    assert plan.instances == []
