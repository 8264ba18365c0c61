"""Tests of pipeline.checktemplates, and of ``shipline validate`` reporting bad templates."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipeline.checktemplates import (
    DEPLOY_CHECK_PLACEHOLDERS,
    GATE_PLACEHOLDERS,
    check_specs,
    template_problems,
)
from pipeline.exitcodes import ExitCode


def test_template_problems_unknown_placeholder_in_url() -> None:
    problems = template_problems("http", {"url": "http://h/{vesion}"}, GATE_PLACEHOLDERS)

    assert problems == [(
        "url",
        "unknown placeholder '{vesion}' in URL 'http://h/{vesion}' "
        "(available: environment, version)",
    )]


def test_template_problems_url_without_scheme() -> None:
    problems = template_problems("http", {"url": "shop.test/health"}, GATE_PLACEHOLDERS)

    assert problems == [
        ("url", "URL 'shop.test/health' does not start with http:// or https://"),
    ]


def test_template_problems_url_from_placeholder() -> None:
    problems = template_problems("http", {"url": "{endpoint}/health"},
                                 DEPLOY_CHECK_PLACEHOLDERS)

    assert problems == []


def test_template_problems_command_string_and_list() -> None:
    string = template_problems("command", "check.sh {instanse}", DEPLOY_CHECK_PLACEHOLDERS)
    listed = template_problems("command", {"command": ["check.sh", "{slot}", "{nope}"]},
                               DEPLOY_CHECK_PLACEHOLDERS)

    assert [option for option, _ in string] == ["command"]
    assert "unknown placeholder '{instanse}'" in string[0][1]
    assert [option for option, _ in listed] == ["command"]
    assert "unknown placeholder '{nope}'" in listed[0][1]


def test_template_problems_good_templates() -> None:
    assert template_problems("http", {"url": "https://h/{version}"}, GATE_PLACEHOLDERS) == []
    assert template_problems("command", "ok.sh {environment}", GATE_PLACEHOLDERS) == []


def test_check_specs_finds_nested_checks() -> None:
    options = {
        "version": "1.0",
        "checks": [{"http": {"url": "http://x"}}, {"command": "a.sh"}],
        "analysis": {"provider": "command", "command": "m.sh"},
    }

    found = [(path, kind) for path, kind, _ in check_specs(options)]

    assert found == [(("checks", 0, "http"), "http"), (("checks", 1, "command"), "command")]


GATE_PIPELINE = """\
version: 1
name: shop
stages:
  - name: checks
    steps:
      - gate:
          uses: http
          url: "shop.test/{vesion}/health"
"""


def test_validate_reports_gate_placeholder(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(GATE_PIPELINE, encoding="utf-8")

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert "unknown placeholder '{vesion}' in URL 'shop.test/{vesion}/health'" in result.stderr
    assert "shipline.yml:8:" in result.stderr


def test_validate_reports_gate_url_scheme(shipline_cli, tmp_path: Path) -> None:
    text = GATE_PIPELINE.replace("{vesion}", "{version}")
    (tmp_path / "shipline.yml").write_text(text, encoding="utf-8")

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert ("URL 'shop.test/{version}/health' does not start with http:// or https://"
            in result.stderr)


def test_validate_reports_deploy_check_placeholder(shipline_cli, tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        version: 1
        name: shop
        environments:
          production:
            target:
              type: command
              deploy: "true"
              instances: [web-1]
        stages:
          - name: release
            environment: production
            steps:
              - deploy:
                  version: "2.0"
                  strategy: rolling
                  checks:
                    - command: "check.sh {instanse}"
        """)
    (tmp_path / "shipline.yml").write_text(text, encoding="utf-8")

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID, result.stdout
    assert "unknown placeholder '{instanse}'" in result.stderr

