"""The GitHub Action, the example workflow and the GitLab CI job, checked against the
vendors' schemas, against each other and against the README and docs/ci.md.

tests/data/ci/ contains unchanged copies of three vendor schemas (draft-07):
``github-action.json`` and ``github-workflow.json`` from SchemaStore/schemastore
(src/schemas/json/, at commit 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e, Apache-2.0),
and ``gitlab-ci.upstream.json``, GitLab's own CI schema as vendored by
python-jsonschema/check-jsonschema (src/check_jsonschema/builtin_schemas/vendor/
gitlab-ci.json, at commit e210bb27484930e1948835f8b454ef680fd196e2, MIT).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker

from helpers.cijob import REPOSITORY
from pipeline.cioutputs import OUTCOMES, STANDARD_NAMES
from pipeline.dotenv import dotenv_key
from pipeline.exitcodes import ExitCode
from pipeline.loader import load_text

SCHEMAS = Path(__file__).parent / "data" / "ci"
ACTION = REPOSITORY / "action.yml"
WORKFLOW = REPOSITORY / "examples" / "ci" / "github-workflow.yml"
GITLAB = REPOSITORY / ".gitlab-ci-example.yml"


def github_yaml(path: Path) -> Any:
    """Load a GitHub file with YAML 1.2 rules, as GitHub does (``on`` stays a string)."""
    return load_text(path.read_text(encoding="utf-8"), path.name).data


def gitlab_yaml(path: Path) -> Any:
    """Load a GitLab file with PyYAML's safe loader (YAML 1.1, like GitLab's Psych)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


#: Formats checked with the schemas. "uri" is left out: GitLab's schema allows an
#: environment URL that is a variable (`$SHIPLINE_ENVIRONMENT_URL`) by its pattern, which
#: a strict URI check would reject, and jsonschema checks "uri" only when the optional
#: rfc3986-validator package is installed, so the result would depend on the venv.
CHECKED_FORMATS = [
    name for name in Draft7Validator.FORMAT_CHECKER.checkers
    if name not in {"uri", "uri-reference", "iri", "iri-reference"}
]


def validator(name: str) -> Draft7Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return Draft7Validator(schema, format_checker=FormatChecker(CHECKED_FORMATS))


def errors(name: str, document: Any) -> list[str]:
    found = validator(name).iter_errors(document)
    return [f"{list(error.absolute_path)}: {error.message}" for error in found]


def local_refs_only(value: Any) -> bool:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return False
        return all(local_refs_only(item) for item in value.values())
    if isinstance(value, list):
        return all(local_refs_only(item) for item in value)
    return True


@pytest.mark.parametrize("name", ["github-action.json", "github-workflow.json",
                                  "gitlab-ci.upstream.json"])
def test_vendor_schema_needs_no_network(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))

    Draft7Validator.check_schema(schema)
    assert local_refs_only(schema)


def test_action_valid() -> None:
    assert errors("github-action.json", github_yaml(ACTION)) == []


def test_action_schema_rejects_broken_action() -> None:
    action = github_yaml(ACTION)
    action["runs"]["using"] = "docker-compose"

    assert errors("github-action.json", action) != []


def test_workflow_valid() -> None:
    assert errors("github-workflow.json", github_yaml(WORKFLOW)) == []


def test_workflow_schema_rejects_broken_workflow() -> None:
    workflow = github_yaml(WORKFLOW)
    del workflow["jobs"]["deploy"]["runs-on"]

    assert errors("github-workflow.json", workflow) != []


def test_gitlab_job_valid() -> None:
    assert errors("gitlab-ci.upstream.json", gitlab_yaml(GITLAB)) == []


def test_gitlab_schema_rejects_broken_job() -> None:
    job = gitlab_yaml(GITLAB)
    job["deploy-production"]["resource_group"] = ["production"]

    assert errors("gitlab-ci.upstream.json", job) != []


def test_action_inputs_and_outputs() -> None:
    action = github_yaml(ACTION)

    assert list(action["inputs"]) == ["pipeline", "args", "version", "python-version",
                                      "junit-path", "working-directory"]
    assert list(action["outputs"]) == list(STANDARD_NAMES)
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_action_installs_from_own_checkout() -> None:
    install = github_yaml(ACTION)["runs"]["steps"][1]

    assert install["env"]["SHIPLINE_SOURCE"] == "${{ github.action_path }}"
    assert '-m pip install --quiet "$SHIPLINE_SOURCE"' in install["run"]


def test_workflow_uses_declared_inputs_and_outputs() -> None:
    action = github_yaml(ACTION)
    steps = github_yaml(WORKFLOW)["jobs"]["deploy"]["steps"]
    deploy = next(step for step in steps if step.get("id") == "shipline")
    used = set(re.findall(r"steps\.shipline\.outputs\.([a-z-]+)", WORKFLOW.read_text()))

    assert set(deploy["with"]) <= set(action["inputs"])
    assert used
    assert used <= set(action["outputs"])


def test_workflow_uploads_the_report_it_asks_for() -> None:
    steps = github_yaml(WORKFLOW)["jobs"]["deploy"]["steps"]
    deploy = next(step for step in steps if step.get("id") == "shipline")
    upload = next(step for step in steps if "upload-artifact" in step.get("uses", ""))

    assert upload["with"]["path"] == deploy["with"]["junit-path"]
    assert upload["if"] == "${{ always() }}"


def test_gitlab_job_reports_match_command() -> None:
    job = gitlab_yaml(GITLAB)["deploy-production"]
    command = job["script"][-1]

    assert f"--junitxml {job['artifacts']['reports']['junit']}" in command
    assert f"--dotenv {job['artifacts']['reports']['dotenv']}" in command
    assert job["artifacts"]["when"] == "always"
    assert job["environment"]["url"] == f"${dotenv_key('environment-url')}"
    assert job["resource_group"] == job["environment"]["name"]


def fenced_yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", path.read_text(encoding="utf-8"),
                      flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("document", ["README.md", "docs/ci.md"])
@pytest.mark.parametrize("example", [WORKFLOW, GITLAB], ids=["github", "gitlab"])
def test_snippet_identical_to_validated_file(document: str, example: Path) -> None:
    assert example.read_text(encoding="utf-8") in fenced_yaml_blocks(REPOSITORY / document)


# -- the action's run step, executed with bash and a stand-in for shipline -----------------


def run_step_script(tmp_path: Path, exit_code: int, **inputs: str) -> tuple[int, str, str]:
    """Run the action's ``Run shipline`` script with a fake ``shipline``.

    The fake prints its arguments one per line and exits with ``exit_code``. Returns the
    script's exit code, the fake's output and the text of the ``GITHUB_OUTPUT`` file.
    """
    step = next(s for s in github_yaml(ACTION)["runs"]["steps"] if s.get("id") == "run")
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "shipline"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@"\nexit {exit_code}\n', encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "output.txt"
    output.write_text("", encoding="utf-8")

    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_OUTPUT": str(output),
        "SHIPLINE_VENV": str(tmp_path / "venv"),
        "SHIPLINE_PIPELINE": inputs.get("pipeline", "shipline.yml"),
        "SHIPLINE_ARGS": inputs.get("args", ""),
        "SHIPLINE_JUNIT": inputs.get("junit", "shipline-report.xml"),
    }
    # The shell and options GitHub uses for `shell: bash`.
    finished = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], env=env, cwd=tmp_path, capture_output=True,
                              text=True, check=False)
    return finished.returncode, finished.stdout, output.read_text(encoding="utf-8")


@pytest.mark.parametrize("code", [int(code) for code in ExitCode])
def test_action_passes_exit_code_through(tmp_path: Path, code: int) -> None:
    returned, _, outputs = run_step_script(tmp_path, code)

    assert returned == code
    assert outputs == f"exit-code={code}\noutcome={OUTCOMES[ExitCode(code)]}\n"


def test_action_arguments(tmp_path: Path) -> None:
    _, arguments, _ = run_step_script(tmp_path, 0, pipeline="deploy/ship line.yml",
                                      args="-v  -p my_plugin", junit="out/r.xml")

    assert arguments.splitlines() == ["run", "deploy/ship line.yml", "-v", "-p", "my_plugin",
                                      "--junitxml", "out/r.xml"]


def test_action_without_junit(tmp_path: Path) -> None:
    _, arguments, _ = run_step_script(tmp_path, 0, junit="")

    assert arguments.splitlines() == ["run", "shipline.yml"]


def test_action_args_not_evaluated_by_shell(tmp_path: Path) -> None:
    _, arguments, _ = run_step_script(tmp_path, 0, args="$(touch pwned) `id` *")

    assert arguments.splitlines()[2:5] == ["$(touch", "pwned)", "`id`"]
    assert not (tmp_path / "pwned").exists()
