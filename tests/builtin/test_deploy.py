"""Validate-time capability checks of deploy steps, through the CLI."""

from __future__ import annotations

from pipeline.exitcodes import ExitCode


def test_deploy_missing_capabilities_named(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("""\
        version: 1
        name: x
        environments:
          prod:
            target: {type: command, instances: [a, b], deploy: "true"}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {version: "1", strategy: blue-green}
        """)
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline.yml:10:42: stages[0].steps[0].deploy.strategy: strategy 'blue-green' needs "
        "slots, which environment 'prod' does not provide (a command target gets slots from "
        "'slots:', 'switch' and 'active_slot'; the local target has them)\n"
    )


def test_deploy_capabilities_of_local_target_suffice(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("""\
        version: 1
        name: x
        environments:
          demo:
            target: {type: local, command: "app {port} {version}", stable: "1.0"}
        stages:
          - name: ship
            environment: demo
            steps:
              - deploy: {version: "2", strategy: canary, traffic: router, steps: [{set_weight: 5}]}
        """)
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
