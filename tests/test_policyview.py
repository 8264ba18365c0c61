"""pipeline.policyview: the plan as policy rules read it."""

from __future__ import annotations

from pathlib import Path

from pipeline.plan import Plan, Stage, Step, When, freeze
from pipeline.policyview import plan_view


def step(stage: str, kind: str, type_: str, **options: object) -> Step:
    return Step(id=f"{stage}/1", name=f"{kind} {type_}", kind=kind, type=type_,
                options=freeze(options), plugin="p", stage=stage)


def plan_of(*stages: Stage) -> Plan:
    return Plan(name="shop", file=Path("shipline.yml"), stages=stages, environments={},
                analyses={}, notifications=(), state={})


def test_plan_view_upstream_follows_needs() -> None:
    plan = plan_of(
        Stage("build", (step("build", "gate", "pass"),)),
        Stage("scan", (step("scan", "scan", "trivy"),), needs=("build",)),
        Stage("test", (step("test", "gate", "pass"),), needs=("build",)),
        Stage("prod", (step("prod", "gate", "pass"),), needs=("scan", "test")),
        Stage("notify", (step("notify", "gate", "pass"),), when=When.ALWAYS),
    )

    stages = plan_view(plan)["stages"]

    assert [stage["upstream"] for stage in stages] == [
        [], ["build"], ["build"], ["build", "scan", "test"], ["build", "prod", "scan", "test"],
    ]
    assert stages[4]["when"] == "always"


def test_plan_view_steps_in_run_order() -> None:
    plan = plan_of(
        Stage("a", (step("a", "gate", "pass"), step("a", "scan", "grype"))),
        Stage("b", (step("b", "deploy", "canary", version="2.0",
                         steps=[{"set_weight": 10}, {"pause": "1m"}, {"set_weight": 100}]),)),
    )

    view = plan_view(plan)

    assert [(s["stage"], s["index"], s["order"]) for s in view["steps"]] == [
        ("a", 0, 0), ("a", 1, 1), ("b", 0, 2),
    ]
    deploy = view["steps"][2]
    assert deploy["strategy"] == "canary"
    assert deploy["version"] == "2.0"
    assert deploy["weights"] == [10, 100]
    assert deploy["options"]["steps"][1] == {"pause": "1m"}
    assert view["steps"][0]["strategy"] is None
    assert view["steps"][0]["version"] is None
    assert view["steps"][0]["weights"] == []
