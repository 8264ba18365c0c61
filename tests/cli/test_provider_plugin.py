"""A project-local plugin (``shipline_plugins.py``) that adds an analysis provider with its
own schema fragment: its options are validated like the built-in ones, and it runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipeline.exitcodes import ExitCode

PLUGIN = '''\
from pipeline import hookimpl
from pipeline.analysis import COMMON_ANALYSIS_PROPERTIES
from pipeline.schema import StepSchema


class ConstantProvider:
    def __init__(self, value):
        self.value = value

    def measure(self, request, cancel):
        return {"result": self.value}


@hookimpl
def shipline_step_schemas():
    fragment = {
        "required": ["value"],
        "properties": {**COMMON_ANALYSIS_PROPERTIES, "value": {"type": "number"}},
    }
    return [StepSchema(kind="analysis", type="constant", schema=fragment,
                       description="Return a fixed value.")]


@hookimpl
def shipline_make_provider(name, options, context):
    return ConstantProvider(options["value"]) if name == "constant" else None
'''

PIPELINE = """\
    version: 1
    name: shop
    analyses:
      fixed:
        provider: constant
        value: {value}
        success: result < 0.01
    stages:
      - name: check
        steps:
          - gate: {{uses: analysis, analysis: fixed}}
          - gate:
              uses: analysis
              analysis: {{provider: constant, value: 0.001, sucess: "result < 1"}}
"""


def write(folder: Path, value: str, inline_typo: bool = False) -> None:
    text = textwrap.dedent(PIPELINE).format(value=value)
    if not inline_typo:
        text = text.replace("sucess:", "success:")
    (folder / "shipline.yml").write_text(text, encoding="utf-8")
    (folder / "shipline_plugins.py").write_text(PLUGIN, encoding="utf-8")


def test_provider_plugin_template_options_validated(shipline_cli, tmp_path):
    write(tmp_path, '"high"')

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.splitlines()[0] == (
        "shipline.yml:6:12: analyses.fixed.value: expected a number, got a string"
    )


def test_provider_plugin_inline_options_validated(shipline_cli, tmp_path):
    write(tmp_path, "0.001", inline_typo=True)

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert (
        "shipline.yml:12:9: stages[0].steps[1].gate.analysis: unknown key 'sucess' (did you "
        "mean 'success'?)"
    ) in result.stderr.splitlines()


def test_provider_plugin_runs(shipline_cli, tmp_path):
    write(tmp_path, "0.001")

    result = shipline_cli("run", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr


def test_provider_plugin_failing_analysis_blocks_run(shipline_cli, tmp_path):
    write(tmp_path, "0.5")

    result = shipline_cli("run", cwd=tmp_path)

    assert result.exit_code == ExitCode.BLOCKED, result.stderr
    assert "BLOCKED  gate analysis (" in result.stdout
    assert "      policy: on_failure is abort\n" in result.stdout
