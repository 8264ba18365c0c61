"""The outcome recorded for a deployment, from the reports of its stage."""

from __future__ import annotations

import pytest

from pipeline.builtin.statehistory import deployment_outcome
from pipeline.plan import Step
from pipeline.report import Outcome, StepReport
from pipeline.state import DeploymentOutcome

STEP = Step(id="release/1", name="deploy", kind="deploy", type="rolling", options={},
            plugin="rolling", stage="release")


def _report(outcome: Outcome, rollback: bool = False) -> StepReport:
    step_id = "release/1/rollback" if rollback else "release/1"
    return StepReport(step_id=step_id, name="deploy", kind="rollback" if rollback else "deploy",
                      outcome=outcome, rollback=rollback)


@pytest.mark.parametrize(("reports", "expected"), [
    ([_report(Outcome.PASSED)], DeploymentOutcome.SUCCEEDED),
    ([_report(Outcome.FAILED), _report(Outcome.PASSED, rollback=True)],
     DeploymentOutcome.ROLLED_BACK),
    ([_report(Outcome.PASSED), _report(Outcome.PASSED, rollback=True)],
     DeploymentOutcome.ROLLED_BACK),
    ([_report(Outcome.FAILED), _report(Outcome.ROLLBACK_FAILED, rollback=True)],
     DeploymentOutcome.ROLLBACK_FAILED),
    ([_report(Outcome.INTERRUPTED), _report(Outcome.PASSED, rollback=True)],
     DeploymentOutcome.INTERRUPTED),
    ([_report(Outcome.FAILED)], DeploymentOutcome.FAILED),
    ([_report(Outcome.INTERRUPTED)], DeploymentOutcome.INTERRUPTED),
    ([_report(Outcome.BLOCKED)], DeploymentOutcome.BLOCKED),
])
def test_deployment_outcome_from_reports(reports: list[StepReport],
                                         expected: DeploymentOutcome) -> None:
    assert deployment_outcome(STEP, reports) is expected
