"""``shipline validate``: every kind of bad input gets one clear message and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.exitcodes import ExitCode

GOOD = """\
version: 1
name: shop
stages:
  - name: check
    steps:
      - gate: {uses: command, command: "true"}
"""


def test_validate_good_file(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(GOOD)
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert result.stdout == "shipline.yml: valid pipeline 'shop' with 1 stage(s)\n"
    assert result.stderr == ""


def test_validate_yaml_extension_is_default_too(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(GOOD, "shipline.yaml")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert result.stdout == "shipline.yaml: valid pipeline 'shop' with 1 stage(s)\n"


def test_validate_missing_default_file(shipline_cli, tmp_path):
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"shipline: error: no pipeline file found: neither {tmp_path}/shipline.yml nor "
        f"{tmp_path}/shipline.yaml exists; create one or pass the pipeline file as an "
        "argument\n"
    )


def test_validate_missing_named_file(shipline_cli, tmp_path):
    result = shipline_cli("validate", "nope.yml", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: nope.yml: file not found\n"


def test_validate_directory(shipline_cli, tmp_path):
    (tmp_path / "folder").mkdir()
    result = shipline_cli("validate", "folder", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: folder: is a directory, not a file; pass the pipeline file itself\n"
    )


def test_validate_empty_file(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("# only a comment\n")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: shipline.yml: the file is empty; a pipeline needs at least "
        "'version', 'name' and 'stages'\n"
    )


def test_validate_binary_file(shipline_cli, tmp_path):
    (tmp_path / "shipline.yml").write_bytes(b"version: 1\n\x00\x01\x02")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: shipline.yml: binary data (a NUL byte at byte offset 11); the "
        "pipeline file must be UTF-8 text\n"
    )


def test_validate_not_utf8(shipline_cli, tmp_path):
    (tmp_path / "shipline.yml").write_bytes("name: caf\u00e9\n".encode("latin-1"))
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.startswith("shipline: error: shipline.yml: ")
    assert "UTF-8" in result.stderr
    assert result.stderr.count("\n") == 1


def test_validate_top_level_list(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("- name: a\n")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: shipline.yml: the top level must be a mapping of keys such as "
        "'version', 'name' and 'stages', not a list\n"
    )


def test_validate_syntax_error_shows_caret(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("version: 1\nname: shop\nstages: [a, b\nother: 1\n")
    result = shipline_cli("validate", cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.exit_code == ExitCode.INVALID
    assert lines[0].startswith("shipline.yml:4:")
    assert lines[-1].strip() == "^"
    assert "Traceback" not in result.stderr


def test_validate_duplicate_key_names_both_lines(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(GOOD + "name: again\n")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline.yml:7:1: duplicate key 'name' (first defined on line 2; remove one of them)\n"
    )


def test_validate_python_tag_rejected(shipline_cli, write_pipeline, tmp_path):
    tagged = 'command: !!python/object/apply:os.system ["id"]'
    write_pipeline(GOOD.replace('command: "true"', tagged))
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline.yml:6:40: tag '!!python/object/apply:os.system' is not allowed (shipline "
        "reads plain YAML data only; remove the tag)\n"
    )


def test_validate_billion_laughs_fails_fast(shipline_cli, tmp_path):
    lines = ["version: 1", "name: x", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghij":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    (tmp_path / "shipline.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert "expands the document beyond" in result.stderr
    assert result.stderr.count("\n") == 1


def test_validate_deep_nesting_is_clear_error(shipline_cli, tmp_path):
    text = "version: 1\nname: x\nstages: " + "[" * 5000 + "]" * 5000 + "\n"
    (tmp_path / "shipline.yml").write_text(text, encoding="utf-8")
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert "nested deeper than 100 levels" in result.stderr
    assert "RecursionError" not in result.stderr


def test_validate_reports_every_error_sorted(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            neeeds: []
            steps:
              - gate: {uses: comand, command: "true"}
          - name: ship
            when: sometimes
            steps: []
        """)
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.splitlines() == [
        "shipline.yml:5:5: stages[0]: unknown key 'neeeds' (did you mean 'needs'?)",
        "shipline.yml:7:22: stages[0].steps[0].gate.uses: 'comand' is not one of "
        "'analysis', 'approval', 'command', 'http', 'package', 'verify' (did you mean "
        "'command'?)",
        "shipline.yml:9:11: stages[1].when: 'sometimes' is not one of 'on_success', "
        "'on_failure', 'always'",
        "shipline.yml:10:12: stages[1].steps: must not be empty",
    ]


def test_validate_version_number_kept_as_text(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(GOOD + "description: 1.10\n")
    result = shipline_cli("plan", "--format", "json", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK


@pytest.mark.parametrize("value", ["on", "off", "yes", "no", "y", "n"])
def test_validate_yaml12_words_are_strings(shipline_cli, write_pipeline, tmp_path, value):
    write_pipeline(GOOD.replace("name: check", f"name: {value}"))
    result = shipline_cli("validate", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK


def test_validate_unknown_option_is_usage_error(shipline_cli, tmp_path):
    result = shipline_cli("validate", "--bogus", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: unrecognized arguments: --bogus (see 'shipline validate --help')\n"
    )


def test_validate_unknown_command(shipline_cli, tmp_path):
    result = shipline_cli("frobnicate", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.startswith("shipline: error: argument COMMAND: invalid choice: ")


def test_schema_command_prints_fragments(shipline_cli, tmp_path):
    result = shipline_cli("schema", "-p", "helpers.stepplugin", cwd=tmp_path)
    schema = json.loads(result.stdout)
    assert result.exit_code == ExitCode.OK
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "threshold" not in result.stdout
    assert '"echo"' in result.stdout


def test_module_entry_point_runs(tmp_path: Path):
    (tmp_path / "shipline.yml").write_text(GOOD, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "pipeline", "validate"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "shipline.yml: valid pipeline 'shop' with 1 stage(s)\n"


#: Modules that ``shipline validate`` of a valid file does not need. Each of them slowed
#: down every start while it was imported at module level.
DEFERRED_MODULES = (
    "concurrent.futures", "cryptography", "hashlib", "http.client", "http.server",
    "jsonschema", "prometheus_client", "requests", "smtplib", "ssl", "urllib3",
    "scipy", "numpy", "croniter", "statistics", "subprocess", "tempfile",
    # shipline's own run-time modules, imported by the plugins when a run needs them.
    "pipeline.commands", "pipeline.checks", "pipeline.commandtarget", "pipeline.localtarget",
    "pipeline.scan.detect", "pipeline.analysischecks", "pipeline.analysissettings",
    "pipeline.judge",
)

DEPLOY = """\
version: 1
name: shop
environments:
  production:
    target: {type: command, instances: [web-1, web-2], deploy: "deploy.sh {instance} {version}"}
stages:
  - name: check
    steps:
      - gate: {uses: command, command: "true"}
  - name: production
    environment: production
    steps:
      - deploy: {version: "1.4.2", strategy: rolling, batch: 1}
"""


def validate_in_new_interpreter(
    folder: Path, report: str, *, autoload: bool
) -> subprocess.CompletedProcess[str]:
    """Run ``shipline validate -q`` on DEPLOY in a new interpreter, then print its exit
    code and the Python expression ``report`` (which may read ``sys.modules``)."""
    (folder / "shipline.yml").write_text(DEPLOY, encoding="utf-8")
    script = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "code = main(['validate', '-q'])\n"
        f"print(code, {report})\n"
    )
    env = {key: value for key, value in os.environ.items()
           if key != "SHIPLINE_DISABLE_PLUGIN_AUTOLOAD"}
    if not autoload:
        env["SHIPLINE_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run([sys.executable, "-c", script], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)


def test_validate_imports_no_deferred_module(tmp_path: Path):
    # Installed plugins stay out: their fragments are checked with jsonschema.
    result = validate_in_new_interpreter(
        tmp_path, f"[name for name in {DEFERRED_MODULES!r} if name in sys.modules]",
        autoload=False)
    assert result.stderr == ""
    assert result.stdout == "0 []\n"


def test_validate_reads_plugins_without_importlib_metadata(tmp_path: Path):
    # scripts/test installs the shipline-nginx plugin into the test environment.
    result = validate_in_new_interpreter(
        tmp_path, "'shipline_nginx' in sys.modules, "
        "[name for name in ('importlib.metadata', 'email') if name in sys.modules]",
        autoload=True)
    assert result.stderr == ""
    assert result.stdout == "0 True []\n"


@pytest.mark.parametrize("lease", ["0.5s", "0s"])
def test_validate_rejects_short_lease(shipline_cli, write_pipeline, tmp_path, lease):
    write_pipeline(GOOD.replace("name: shop\n", f"name: shop\nstate: {{lease: {lease}}}\n"))

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (f"shipline.yml:3:16: state.lease: '{lease}' is too short: use at "
                             f"least 1s\n")


DEPLOY_OPTIONS = """\
version: 1
name: shop
environments:
  production:
    target: {type: command, instances: [web-1, web-2], deploy: "deploy.sh {instance} {version}"}
stages:
  - name: production
    environment: production
    steps:
      - deploy:
          version: "1.4.2"
          strategy: %s
"""


@pytest.mark.parametrize(("options", "expected"), [
    ("canary\n          steps:\n            - pause: {until_aproved: {file: go}}\n",
     "shipline.yml:14:23: stages[0].steps[0].deploy.steps[0].pause: unknown key "
     "'until_aproved' (did you mean 'until_approved'?)\n"),
    ("canary\n          steps:\n            - pause: {until_approved: {fiel: go}}\n",
     "shipline.yml:14:40: stages[0].steps[0].deploy.steps[0].pause.until_approved: unknown "
     "key 'fiel' (did you mean 'file'?)\n"),
    ("canary\n          steps:\n            - pause: {until_approved: {}}\n",
     "shipline.yml:14:39: stages[0].steps[0].deploy.steps[0].pause.until_approved: an "
     "approval needs one of 'file', 'env' or 'signed'\n"),
    ("rolling\n          batch: half\n",
     "shipline.yml:13:18: stages[0].steps[0].deploy.batch: 'half' is not a valid count or "
     "percentage: use a count such as 3 or a percentage such as '25%'\n"),
    ("rolling\n          batch: 1.5\n",
     "shipline.yml:13:18: stages[0].steps[0].deploy.batch: expected an integer, string or "
     "list, got a number (use a count such as 3 or a percentage such as '25%')\n"),
    ("rolling\n          batch: 0\n",
     "shipline.yml:13:18: stages[0].steps[0].deploy.batch: must be 1 or more, got 0\n"),
    ("rolling\n          batch: [1, 150%]\n",
     "shipline.yml:13:22: stages[0].steps[0].deploy.batch[1]: '150%' is not valid: use more "
     "than 0% up to 100%\n"),
], ids=["misspelt-pause-key", "misspelt-approval-key", "approval-without-source",
        "amount-word", "amount-fraction", "zero-batch", "percent-over-100"])
def test_validate_names_the_deploy_option(shipline_cli, write_pipeline, tmp_path, options,
                                          expected):
    write_pipeline(DEPLOY_OPTIONS % options)

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == expected


def test_validate_points_at_target_command_with_bad_placeholder(shipline_cli, write_pipeline,
                                                                 tmp_path):
    write_pipeline(DEPLOY.replace('deploy: "deploy.sh {instance} {version}"',
                                  'deploy: "deploy.sh {instance} {verison}"'))

    result = shipline_cli("validate", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline.yml:5:64: environments.production.target.deploy: unknown placeholder "
        "'{verison}' in command 'deploy.sh {instance} {verison}' (available: instance, "
        "version, package)\n"
    )
