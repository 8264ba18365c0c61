"""Policy files through ``shipline validate``, ``plan`` and ``run``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from helpers import stepplugin
from pipeline.exitcodes import ExitCode

PLUGIN = ("-p", "helpers.stepplugin")

PIPELINE = """\
    version: 1
    name: shop
    policy: policy.yml
    environments:
      production: {target: {type: none}}
    stages:
      - name: check
        steps:
          - gate: {uses: pass}
      - name: production
        environment: production
        steps:
          - deploy: {strategy: record, version: "2.0"}
    """

#: The three rules that the docs use as examples, written for the ``record`` strategy.
POLICY = """\
    version: 1
    rules:
      - name: production-is-progressive
        when: stage.environment == "production"
        check: >-
          stage.steps.all(s, s.kind != "deploy" || s.strategy in ["canary", "blue-green"])
        message: production must use canary or blue-green
      - name: scan-before-production
        when: stage.environment == "production"
        check: >-
          stage.steps.filter(s, s.kind == "deploy").all(d,
            plan.steps.exists(s, s.kind == "scan" && s.order < d.order))
        message: a scan step must precede every production deploy
      - name: small-first-canary
        check: stage.steps.all(s, s.weights.size() == 0 || s.weights[0] <= 25)
        message: the first canary weight is at most 25
    """


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_validate_policy_violations_exit_2(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", POLICY)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the plan breaks the policy (2 violation(s)):\n"
        "  policy.yml:3:5: rule 'production-is-progressive' fails for stage 'production': "
        "production must use canary or blue-green\n"
        "  policy.yml:8:5: rule 'scan-before-production' fails for stage 'production': "
        "a scan step must precede every production deploy\n"
    )


def test_plan_policy_violations_exit_3(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", POLICY)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("plan", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.BLOCKED
    assert result.stdout == ""


def test_run_policy_violation_runs_nothing(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", POLICY)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("run", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.BLOCKED
    assert [event for event in stepplugin.EVENTS if event[0] == "deploy"] == []
    assert "rule 'production-is-progressive' fails for stage 'production'" in result.stderr


def test_run_policy_met(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - name: versions-are-quoted
            when: stage.environment == "production"
            check: stage.steps.all(s, s.kind != "deploy" || s.version.matches("^[0-9]+[.][0-9]+$"))
            message: production deploys a release version
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("run", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    assert [event for event in stepplugin.EVENTS if event[0] == "deploy"] == [("deploy", "2.0")]


def test_policy_option_adds_file(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", "version: 1\nrules:\n"
          "  - {name: any, check: 'true', message: never shown}\n")
    write(tmp_path, "org.yml", """\
        version: 1
        rules:
          - name: has-scan
            scope: plan
            check: plan.steps.exists(s, s.kind == "scan")
            message: every pipeline scans
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, "--policy", "org.yml", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the plan breaks the policy (1 violation(s)):\n"
        "  org.yml:3:5: rule 'has-scan' fails for the plan: every pipeline scans\n"
    )


def test_policy_file_not_found(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: policy.yml: policy file not found (named by 'policy:' in "
        "shipline.yml)\n"
    )


def test_policy_schema_error_has_position(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - name: x
            chek: "true"
            message: m
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert "policy.yml:3:5: rules[0]: missing required key 'check'" in result.stderr
    assert "policy.yml:4:5: rules[0]: unknown key 'chek' (did you mean 'check'?)" \
        in result.stderr


def test_policy_cel_syntax_error(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - name: broken
            check: stage.steps.all(s,
            message: m
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "policy.yml:4:12: rules[0].check: CEL expression 'stage.steps.all(s,' at column 18: "
        "syntax error\n"
    )


def test_policy_duplicate_rule_names(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - {name: a, check: "true", message: m}
          - {name: a, check: "true", message: m}
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "policy.yml:4:12: rules[1].name: duplicate rule name 'a' (first used on line 3)\n"
    )


def test_policy_evaluation_error_is_invalid(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - name: typo
            check: stage.enviroment == "production"
            message: m
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("run", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "policy.yml:4:12: rule 'typo' cannot be checked for stage 'check': CEL expression "
        "'stage.enviroment == \"production\"': the map has no key 'enviroment' (read as "
        "stage.enviroment)\n"
    )


def test_policy_evaluation_errors_all_listed(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - name: typo
            check: stage.enviroment == "production"
            message: m
          - name: fine
            check: stage.name != ""
            message: m
          - name: notbool
            check: stage.name
            message: m
        """)
    write(tmp_path, "other.yml", """\
        version: 1
        rules:
          - {name: count, scope: plan, check: plan.stages.size(), message: m}
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, "--policy", "other.yml", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "other.yml:3:39: rule 'count' cannot be checked for the plan: CEL expression "
        "'plan.stages.size()': the result must be true or false, got int 2\n"
        "policy.yml:4:12: rule 'typo' cannot be checked for stage 'check': CEL expression "
        "'stage.enviroment == \"production\"': the map has no key 'enviroment' (read as "
        "stage.enviroment)\n"
        "policy.yml:10:12: rule 'notbool' cannot be checked for stage 'check': CEL "
        "expression 'stage.name': the result must be true or false, got str 'check'\n"
    )


def test_policy_check_not_boolean_is_invalid(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", """\
        version: 1
        rules:
          - {name: count, scope: plan, check: plan.stages.size(), message: m}
        """)
    write(tmp_path, "shipline.yml", PIPELINE)

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "policy.yml:3:39: rule 'count' cannot be checked for the plan: CEL expression "
        "'plan.stages.size()': the result must be true or false, got int 2\n"
    )


def test_plan_format_policy_prints_view(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE.replace("    policy: policy.yml\n", ""))

    result = shipline_cli("plan", *PLUGIN, "--format", "policy", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    view = json.loads(result.stdout)
    assert [stage["name"] for stage in view["stages"]] == ["check", "production"]
    assert view["stages"][1]["upstream"] == ["check"]
    deploy = view["steps"][1]
    assert deploy["order"] == 1
    assert deploy["strategy"] == "record"
    assert deploy["version"] == "2.0"
    assert view["environments"]["production"] == {
        "name": "production", "target": "none", "router": None, "url": None,
        "protected": False, "protect": {},
    }


LOCAL_SCANNER = """\
    from pipeline import hookimpl, StepSchema

    @hookimpl
    def shipline_step_schemas():
        return [StepSchema("scan", "fake", {"properties": {}})]
    """

CANARY_PIPELINE = """\
    version: 1
    name: shop
    policy: policy.yml
    environments:
      production:
        target: {type: command, instances: [web-1], deploy: "true"}
    stages:
      - name: scan
        steps:
          - scan: {uses: fake}
      - name: production
        environment: production
        steps:
          - deploy:
              version: "2.0"
              strategy: canary
              steps:
                - set_weight: WEIGHT
                - set_weight: 100
    """


@pytest.mark.parametrize(("weight", "code"), [(20, ExitCode.OK), (30, ExitCode.INVALID)])
def test_policy_examples_on_canary_with_scan(shipline_cli, tmp_path, weight, code):
    write(tmp_path, "policy.yml", POLICY)
    write(tmp_path, "shipline_plugins.py", LOCAL_SCANNER)
    write(tmp_path, "shipline.yml", CANARY_PIPELINE.replace("WEIGHT", str(weight)))

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == code, result.stderr
    if code == ExitCode.INVALID:
        assert result.stderr == (
            "shipline: error: the plan breaks the policy (1 violation(s)):\n"
            "  policy.yml:14:5: rule 'small-first-canary' fails for stage 'production': "
            "the first canary weight is at most 25\n"
        )


#: The further examples of docs/security.md, which hold for CANARY_PIPELINE with a gate.
MORE_EXAMPLES = """\
    version: 1
    rules:
      - name: production-from-protected-environment
        when: stage.environment == "production"
        check: plan.environments["production"].protected
        message: production needs protect rules

      - name: production-has-a-gate
        when: stage.environment == "production"
        check: stage.steps.exists(s, s.kind == "gate")
        message: production stages need a gate that checks the release

      - name: scan-is-upstream
        when: stage.environment == "production"
        check: >-
          stage.upstream.exists(name, plan.stages.exists(t,
            t.name == name && t.steps.exists(s, s.kind == "scan")))
        message: production must depend on a stage that scans, so a blocked scan stops it

      - name: has-a-scan
        scope: plan
        check: plan.steps.exists(s, s.kind == "scan")
        message: every pipeline scans
    """


def test_policy_more_examples(shipline_cli, tmp_path):
    write(tmp_path, "policy.yml", MORE_EXAMPLES)
    write(tmp_path, "shipline_plugins.py", LOCAL_SCANNER)
    pipeline = CANARY_PIPELINE.replace("WEIGHT", "20")
    write(tmp_path, "shipline.yml", pipeline)

    failing = shipline_cli("validate", cwd=tmp_path)

    assert failing.exit_code == ExitCode.INVALID
    assert failing.stderr == (
        "shipline: error: the plan breaks the policy (2 violation(s)):\n"
        "  policy.yml:3:5: rule 'production-from-protected-environment' fails for stage "
        "'production': production needs protect rules\n"
        "  policy.yml:8:5: rule 'production-has-a-gate' fails for stage 'production': "
        "production stages need a gate that checks the release\n"
    )

    protected = pipeline.replace('deploy: "true"}', 'deploy: "true"}\n'
                                 '        protect: {branches: [main]}')
    protected = protected.rstrip(" ") + "          - gate: {uses: command, command: 'true'}\n"
    write(tmp_path, "shipline.yml", protected)

    passing = shipline_cli("validate", cwd=tmp_path)

    assert passing.exit_code == ExitCode.OK, passing.stderr


def test_policy_list_and_option_read_once(shipline_cli, tmp_path):
    (tmp_path / "rules").mkdir()
    write(tmp_path, "rules/a.yml", "version: 1\nrules:\n"
          "  - {name: a, scope: plan, check: 'false', message: rule a}\n")
    write(tmp_path, "rules/b.yml", "version: 1\nrules:\n"
          "  - {name: b, scope: plan, check: 'false', message: rule b}\n")
    write(tmp_path, "shipline.yml",
          PIPELINE.replace("policy: policy.yml", "policy: [rules/a.yml, rules/b.yml]"))

    result = shipline_cli("validate", *PLUGIN, "--policy", "rules/a.yml", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the plan breaks the policy (2 violation(s)):\n"
        "  rules/a.yml:3:5: rule 'a' fails for the plan: rule a\n"
        "  rules/b.yml:3:5: rule 'b' fails for the plan: rule b\n"
    )


def test_policy_key_wrong_type(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE.replace("policy: policy.yml", "policy: {a: 1}"))

    result = shipline_cli("validate", *PLUGIN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline.yml:3:9: policy: expected a string or list, got a mapping\n"
