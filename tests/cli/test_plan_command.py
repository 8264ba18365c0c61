"""``shipline plan``: the compiled plan as text and as JSON."""

from __future__ import annotations

import json

from pipeline.exitcodes import ExitCode

PIPELINE = """\
version: 1
name: shop
secrets: [HOOK_URL]
environments:
  prod: {target: {type: none}}
stages:
  - name: ship
    needs: [build]
    environment: prod
    timeout: 10m
    steps:
      - deploy: {strategy: record, version: 1.10}
  - name: build
    steps:
      - gate: {uses: pass, message: "${HOOK_URL}"}
        timeout: 30s
      - gate: {uses: echo}
"""


def test_plan_text_lists_stages_in_run_order(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(PIPELINE)
    result = shipline_cli("plan", "-p", "helpers.stepplugin", cwd=tmp_path,
                          env={"HOOK_URL": "https://hooks.invalid/T0/B0/xyz"})
    assert result.exit_code == ExitCode.OK
    assert result.stdout.splitlines() == [
        "pipeline shop (shipline.yml): 2 stage(s)",
        "",
        "1. build  [on_success; unbounded]",
        # The 30s timeout, and up to 30s more for a cancelled step to stop.
        "   - gate pass: gate, uses pass, plugin helpers.stepplugin, at most 1m (line 15)",
        "   - gate echo: gate, uses echo, plugin helpers.stepplugin, unbounded (line 17)",
        "",
        "2. ship -> prod (none target)  [on_success, needs build; at most 10m30s]",
        "   promote: unknown; roll back: unknown; worst case with rollback: unknown",
        "   - deploy 1.10 (record): deploy, strategy record, plugin helpers.stepplugin, "
        "unbounded (line 12)",
    ]


def test_plan_json_masks_secrets(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE)
    result = shipline_cli("plan", "-p", "helpers.stepplugin", "--format", "json", str(path),
                          env={"HOOK_URL": "https://hooks.invalid/T0/B0/xyz"})
    data = json.loads(result.stdout)
    build, ship = data["stages"]
    assert result.exit_code == ExitCode.OK
    assert build["steps"][0]["options"] == {"message": "***"}
    assert build["steps"][0]["max_duration"] == 60.0
    assert build["max_duration"] is None
    assert ship["max_duration"] == 630.0
    assert ship["steps"][0]["options"] == {"version": "1.10"}
    assert ship["environment"] == "prod"
    assert "xyz" not in result.stdout


def test_plan_masks_secret_in_step_name(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        secrets: [DEPLOY_TOKEN]
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - name: "ship ${DEPLOY_TOKEN}"
                deploy: {strategy: record, version: "${DEPLOY_TOKEN}"}
        """)
    env = {"DEPLOY_TOKEN": "tok-0123456789"}

    text = shipline_cli("plan", "-p", "helpers.stepplugin", str(path), env=env)
    data = shipline_cli("plan", "-p", "helpers.stepplugin", "--format", "json", str(path),
                        env=env)

    assert "   - ship ***: deploy, strategy record" in text.stdout
    assert "tok-0123456789" not in text.stdout
    assert "tok-0123456789" not in data.stdout
    assert json.loads(data.stdout)["stages"][0]["steps"][0]["options"] == {"version": "***"}
