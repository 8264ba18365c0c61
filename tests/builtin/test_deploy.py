"""Validate-time capability checks of deploy steps, through the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

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


def test_validate_rejects_version_with_line_break(shipline_cli, tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        version: 1
        name: shop
        environments:
          production:
            target: {type: command, deploy: "true", instances: [web-1]}
        stages:
          - name: release
            environment: production
            steps:
              - deploy: {version: "${RELEASE}", strategy: rolling}
        """)
    (tmp_path / "shipline.yml").write_text(text, encoding="utf-8")

    result = shipline_cli("validate", cwd=tmp_path, env={"RELEASE": "1.0\nEVIL=1"})

    assert result.exit_code == ExitCode.INVALID
    assert "version '1.0\\nEVIL=1' contains a control character such as a line break" in (
        result.stderr)
