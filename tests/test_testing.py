"""The fixtures for plugin authors: ``shipline_pipeline`` and the ``fake`` target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pipeline
from pipeline import Outcome, StepReport, StepSchema
from pipeline.testing import PipelineRun, run_pipeline
from pipeline.testtarget import FakeCall, FakeTarget

CANARY = """\
version: 1
name: shop
environments:
  production:
    target: {type: fake, slots: {blue: [b1, b2], green: [g1, g2]}, version: "1.0"}
stages:
  - name: production
    environment: production
    steps:
      - deploy:
          version: "2.0"
          strategy: canary
          steps: [{set_weight: 20}, {pause: 10m}]
"""


class IncidentGate:
    """A gate plugin object, as a plugin author would pass one to the fixture."""

    def __init__(self, open_incidents: int) -> None:
        self.open_incidents = open_incidents

    @pipeline.hookimpl
    def shipline_step_schemas(self) -> list[StepSchema]:
        return [StepSchema(kind="gate", type="incidents", schema={
            "properties": {"limit": {"type": "integer", "minimum": 0}},
            "required": ["limit"],
        })]

    @pipeline.hookimpl
    def shipline_run_gate(self, step: pipeline.Step) -> StepReport | None:
        if step.type != "incidents":
            return None
        passed = self.open_incidents <= step.options["limit"]
        return StepReport(step.id, step.name, step.kind,
                          Outcome.PASSED if passed else Outcome.FAILED,
                          message=f"{self.open_incidents} open incidents")


def test_shipline_pipeline_runs_canary(shipline_pipeline: Callable[..., PipelineRun]) -> None:
    run = shipline_pipeline(CANARY)

    assert run.exit_code == 0
    assert run.report("production/1").outcome is Outcome.PASSED
    target = run.targets["production"]
    # The canary was promoted, and the old version removed from blue after the delay.
    assert target.versions == {"b1": None, "b2": None, "g1": "2.0", "g2": "2.0"}
    assert target.active == "green"
    assert target.operations("set_weight") == [
        FakeCall("set_weight", "green", "0"), FakeCall("set_weight", "green", "20"),
    ]
    assert run.outputs["deployed-version"] == "2.0"


def test_shipline_pipeline_prepared_target_fails(
    shipline_pipeline: Callable[..., PipelineRun],
) -> None:
    target = FakeTarget(slots={"blue": ["b1", "b2"], "green": ["g1", "g2"]})
    target.fail("deploy", "g2", message="disk full")

    run = shipline_pipeline(CANARY, targets={"production": target})

    assert run.exit_code == 1
    assert run.report("production/1").message == (
        "1 of 2 instances of slot 'green' failed: g2: deploy failed: disk full")
    assert run.report("production/1/rollback").outcome is Outcome.PASSED
    assert target.active == "blue"
    assert target.versions["g1"] is None


def test_shipline_pipeline_invalid_pipeline(
    shipline_pipeline: Callable[..., PipelineRun], tmp_path: Path
) -> None:
    run = shipline_pipeline(CANARY.replace("set_weight: 20", "set_weight: 200"))

    assert run.exit_code == 2
    assert run.result is None
    assert run.reports == []
    assert run.errors == (f"{tmp_path / 'shipline.yml'}:13:32: stages[0].steps[0].deploy."
                          "steps[0].set_weight: must be 100 or less, got 200")


def test_shipline_pipeline_plugin_object(shipline_pipeline: Callable[..., PipelineRun]) -> None:
    text = CANARY + "      - gate: {uses: incidents, limit: 0}\n"

    run = shipline_pipeline(text, plugins=[IncidentGate(open_incidents=2)])

    assert run.exit_code == 1
    assert run.report("production/2").message == "2 open incidents"
    assert run.targets["production"].active == "blue"


def test_run_pipeline_accepts_mapping(tmp_path: Path) -> None:
    document = {
        "version": 1, "name": "shop",
        "environments": {"production": {"target": {"type": "fake"}}},
        "stages": [{"name": "production", "environment": "production", "steps": [
            {"deploy": {"version": "2.0", "strategy": "rolling", "batch": 1}},
        ]}],
    }

    run = run_pipeline(document, directory=tmp_path)

    assert run.exit_code == 0
    assert run.targets["production"].versions == {"fake-1": "2.0", "fake-2": "2.0"}
    assert (tmp_path / "shipline.yml").is_file()
