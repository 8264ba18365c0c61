"""Plugin discovery and plugin errors, through the command line."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipeline.exitcodes import ExitCode

PIPELINE = """\
version: 1
name: shop
stages:
  - name: check
    steps:
      - gate: {uses: local-check}
"""

LOCAL_PLUGIN = '''\
import pipeline
from pipeline import Outcome, StepReport, StepSchema


@pipeline.hookimpl
def shipline_step_schemas():
    return [StepSchema("gate", "local-check", {"properties": {}})]


@pipeline.hookimpl
def shipline_run_gate(step, context):
    if step.type == "local-check":
        return StepReport(step.id, step.name, step.kind, Outcome.PASSED, message="local ok")
    return None
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_plugins_lists_builtins(shipline_cli, tmp_path):
    result = shipline_cli("plugins", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert "deploy  (built-in)" in result.stdout
    assert "junitxml  (built-in)" in result.stdout
    assert "terminal  (built-in)" in result.stdout


def test_plugins_blocked_builtin_is_not_listed(shipline_cli, tmp_path):
    result = shipline_cli("plugins", "-p", "no:junitxml", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert "junitxml" not in result.stdout


def test_plugins_local_file_is_loaded_and_runs(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    plugin = write(tmp_path, "shipline_plugins.py", LOCAL_PLUGIN)

    listing = shipline_cli("plugins", "shipline.yml", cwd=tmp_path)
    run = shipline_cli("run", cwd=tmp_path)

    assert f"{plugin.resolve()}  (local file)" in listing.stdout
    assert "provides: gate local-check" in listing.stdout
    assert run.exit_code == ExitCode.OK
    assert "PASSED   gate local-check" in run.stdout


def test_plugins_listed_in_pipeline_file_are_loaded(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", """\
        version: 1
        name: shop
        plugins: [helpers.stepplugin]
        stages:
          - name: check
            steps:
              - gate: {uses: echo, message: from the plugins list}
        """)
    result = shipline_cli("run", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert ": from the plugins list" in result.stdout


def test_plugins_unknown_module_is_clear_error(shipline_cli, tmp_path):
    result = shipline_cli("plugins", "-p", "no_such_plugin_module", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: plugin 'no_such_plugin_module' (-p on the command line) could not "
        "be imported: ModuleNotFoundError: No module named 'no_such_plugin_module'\n"
    )


def test_plugins_misspelled_hook_fails_at_start(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    plugin = write(tmp_path, "shipline_plugins.py", """\
        import pipeline

        @pipeline.hookimpl
        def shipline_run_gatee(step, context):
            return None
        """)
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"shipline: error: plugin '{plugin.resolve()}' implements 'shipline_run_gatee', "
        "which is not a shipline hook (did you mean 'shipline_run_gate'?)\n"
    )


def test_plugins_import_error_in_local_file(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    write(tmp_path, "shipline_plugins.py", "import not_installed_anywhere\n")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: shipline_plugins.py: could not be imported: ModuleNotFoundError: "
        "No module named 'not_installed_anywhere'\n"
    )


def test_plugins_local_file_blocked_with_no(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    write(tmp_path, "shipline_plugins.py", LOCAL_PLUGIN)
    result = shipline_cli("validate", "-p", "no:shipline_plugins.py", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert "'local-check' is not" in result.stderr
