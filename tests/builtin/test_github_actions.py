"""GitHub Actions output of a real ``shipline`` subprocess run with GITHUB_ACTIONS=true."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from helpers.cijob import read_github_outputs, run_shipline
from pipeline.exitcodes import ExitCode

PIPELINE = """\
version: 1
name: shop
secrets: [DEPLOY_TOKEN]
environments:
  prod:
    target: {type: none}
    url: "https://shop.example.com/"
stages:
  - name: checks
    steps:
      - name: smoke
        gate: {uses: echo, message: "token ${DEPLOY_TOKEN} ok"}
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
      - name: verify
        gate: {uses: fail, message: "100% down, see: a,b\\n::warning::injected"}
"""

SECRET = "abc%def\nsecond-line"


def github_job(tmp_path: Path, pipeline: str = PIPELINE, *args: str, cwd: Path | None = None,
               **env: str) -> tuple[int, str, str]:
    """Run ``shipline run`` as in a GitHub job; return exit code, stdout and stderr."""
    (tmp_path / "shipline.yml").write_text(pipeline, encoding="utf-8")
    (tmp_path / "output.txt").touch()
    (tmp_path / "summary.md").touch()
    result = run_shipline(
        "run", str(tmp_path / "shipline.yml"), "-p", "helpers.stepplugin", *args,
        cwd=cwd or tmp_path,
        env={
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_WORKSPACE": str(tmp_path),
            "DEPLOY_TOKEN": SECRET,
            **env,
        },
    )
    return result.returncode, result.stdout, result.stderr


def normalized(text: str) -> str:
    """Replace the random stop-commands token and measured durations with fixed text."""
    text = re.sub(r"shipline-[0-9a-f]{32}", "TOKEN", text)
    text = re.sub(r"\((?:\d+(?:\.\d+)?(?:ms|s|m|h))+\)", "(T)", text)
    return re.sub(r" in (?:\d+(?:\.\d+)?(?:ms|s|m|h))+;", " in T;", text)


def test_github_actions_commands_exact(tmp_path: Path) -> None:
    code, stdout, _ = github_job(tmp_path)

    assert code == ExitCode.FAILED
    assert normalized(stdout) == textwrap.dedent("""\
        ::add-mask::abc%25def%0Asecond-line
        ::add-mask::abc%25def
        ::add-mask::second-line
        ::stop-commands::TOKEN
        ::TOKEN::
        ::group::stage checks
        ::stop-commands::TOKEN
          PASSED   smoke (T): token *** ok
        ::TOKEN::
        ::endgroup::
        ::stop-commands::TOKEN
        ::TOKEN::
        ::group::stage ship -> prod
        ::stop-commands::TOKEN
          PASSED   deploy 2.0 (record) (T): deployed 2.0
          FAILED   verify (T): 100% down, see: a,b
              ::warning::injected
        ::TOKEN::
        ::error title=gate 'verify' in stage 'ship'%3A failed,file=shipline.yml,line=17,col=9::100%25 down, see: a,b ::warning::injected
        ::stop-commands::TOKEN
          PASSED   rollback: deploy 2.0 (record) (T): restored the version before 2.0
        ::TOKEN::
        ::endgroup::
        ::stop-commands::TOKEN
        shop: 2 stage(s): 1 passed, 1 failed in T; exit 1 (a step or a required notification failed; changes were rolled back)
        ::TOKEN::
        """)  # noqa: E501


def test_github_actions_token_is_random(tmp_path: Path) -> None:
    first = re.findall(r"::stop-commands::(\S+)", github_job(tmp_path)[1])
    second = re.findall(r"::stop-commands::(\S+)", github_job(tmp_path)[1])

    assert len(set(first)) == 1
    assert len(set(second)) == 1
    assert first[0] != second[0]
    assert len(first[0]) == len("shipline-") + 32


def test_github_actions_outputs(tmp_path: Path) -> None:
    github_job(tmp_path, PIPELINE, "--junitxml", "reports/junit.xml")

    assert read_github_outputs(tmp_path / "output.txt") == {
        "exit-code": "1",
        "outcome": "failed",
        "deployed-version": "2.0",
        "rolled-back": "true",
        "environment-url": "https://shop.example.com/",
        "report-path": str(tmp_path / "reports" / "junit.xml"),
    }


def test_github_actions_outputs_random_delimiters(tmp_path: Path) -> None:
    github_job(tmp_path)
    text = (tmp_path / "output.txt").read_text(encoding="utf-8")
    delimiters = re.findall(r"^[a-z-]+<<(.*)$", text, flags=re.MULTILINE)

    assert len(delimiters) == 6
    assert len(set(delimiters)) == 6
    assert all(re.fullmatch(r"ghadelimiter_[0-9a-f]{32}", d) for d in delimiters)


def test_github_actions_output_value_cannot_inject(tmp_path: Path) -> None:
    # A version cannot contain a line break (validate rejects it), an environment URL can.
    url = "https://shop.example.com/\nexit-code<<EOF\n0\nEOF"
    pipeline = PIPELINE.replace('url: "https://shop.example.com/"',
                                'url: "https://shop.example.com/\\nexit-code<<EOF\\n0\\nEOF"')
    github_job(tmp_path, pipeline)
    outputs = read_github_outputs(tmp_path / "output.txt")

    assert outputs["environment-url"] == url
    assert outputs["exit-code"] == "1"


def test_github_actions_outputs_appended(tmp_path: Path) -> None:
    (tmp_path / "output.txt").write_text("earlier=value\n", encoding="utf-8")
    (tmp_path / "shipline.yml").write_text(PIPELINE, encoding="utf-8")
    run_shipline("run", "-p", "helpers.stepplugin", cwd=tmp_path, env={
        "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "DEPLOY_TOKEN": SECRET,
    })
    text = (tmp_path / "output.txt").read_text(encoding="utf-8")

    assert text.startswith("earlier=value\nexit-code<<ghadelimiter_")


def test_github_actions_annotation_path_from_workspace(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "shipline.yml").write_text(PIPELINE, encoding="utf-8")
    result = run_shipline("run", "-p", "helpers.stepplugin", cwd=deploy, env={
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path), "DEPLOY_TOKEN": SECRET,
    })

    assert ",file=deploy/shipline.yml,line=17,col=9::" in result.stdout


def test_github_actions_summary(tmp_path: Path) -> None:
    github_job(tmp_path)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    table = re.sub(r"\| [0-9.]+(?:ms|s) \|", "| T |", summary.split("\n\n")[2])

    assert summary.startswith("## shipline: shop\n\n**failed** (exit 1) in ")
    assert ", deployed version `2.0`, rolled back\n" in summary
    assert table == textwrap.dedent("""\
        | Stage | Step | Outcome | Duration | Message |
        | --- | --- | --- | --- | --- |
        | checks | smoke | passed | T | token *** ok |
        | ship | deploy 2.0 (record) | passed | T | deployed 2.0 |
        | ship | verify | **failed** | T | 100% down, see: a,b ::warning::injected |
        | ship | rollback: deploy 2.0 (record) | passed | T | restored the version before 2.0 |""")
    assert "```mermaid\ngantt\n    title Timeline\n    dateFormat x\n" in summary
    assert "    section ship\n" in summary
    assert re.search(r"\n    verify :crit, \d{13}, \d{13}\n", summary)


def test_github_actions_secret_never_written(tmp_path: Path) -> None:
    code, stdout, stderr = github_job(tmp_path)
    files = (tmp_path / "summary.md").read_text() + (tmp_path / "output.txt").read_text()

    assert code == ExitCode.FAILED
    for text in (stdout.split("\n", 3)[3], stderr, files):
        assert "abc%def" not in text
        assert "second-line" not in text


def test_github_actions_events_to_stdout_commands_to_stderr(tmp_path: Path) -> None:
    _, stdout, stderr = github_job(tmp_path, PIPELINE, "--events", "-")

    assert "::group::stage checks" in stderr
    assert "::" not in "".join(line[:2] for line in stdout.splitlines())


def test_github_actions_validation_annotations(tmp_path: Path) -> None:
    pipeline = textwrap.dedent("""\
        version: 1
        name: shop
        stages:
          - name: a, b
            steps:
              - gate: {uses: nope}
        """)
    code, stdout, _stderr = github_job(tmp_path, pipeline)
    lines = stdout.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]

    assert code == ExitCode.INVALID
    # DEPLOY_TOKEN is a secret by its name, so its mask lines come before anything else.
    assert masks == lines[:len(masks)]
    assert lines[len(masks):] == [
        "::error title=invalid pipeline,file=shipline.yml,line=4,col=11::stages[0].name: "
        "'a, b' is not a valid name: use letters, digits, '.', '_' and '-', starting with "
        "a letter or digit",
        "::error title=invalid pipeline,file=shipline.yml,line=6,col=22::stages[0].steps[0]"
        ".gate.uses: 'nope' is not one of 'analysis', 'approval', 'command', 'echo', 'fail', "
        "'http', 'package', 'pass', 'raise', 'verify', 'wait'",
    ]
    assert read_github_outputs(tmp_path / "output.txt")["outcome"] == "invalid"
    assert read_github_outputs(tmp_path / "output.txt")["exit-code"] == "2"


def test_github_actions_at_most_ten_errors(tmp_path: Path) -> None:
    steps = "".join(f"      - gate: {{uses: nope{n}}}\n" for n in range(12))
    pipeline = f"version: 1\nname: shop\nstages:\n  - name: a\n    steps:\n{steps}"
    code, stdout, stderr = github_job(tmp_path, pipeline)

    assert code == ExitCode.INVALID
    assert len([line for line in stdout.splitlines() if line.startswith("::error ")]) == 10
    assert ("shipline: WARNING: 2 more error annotation(s) left out: GitHub shows at most "
            "10 per step; the log above has them all") in stderr


def test_github_actions_off_without_variable(tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(PIPELINE, encoding="utf-8")
    result = run_shipline("run", "-p", "helpers.stepplugin", cwd=tmp_path,
                          env={"GITHUB_ACTIONS": "false", "DEPLOY_TOKEN": SECRET})

    assert "::" not in result.stdout.replace("::warning::injected", "")


def test_github_actions_output_directory_stops_run(tmp_path: Path) -> None:
    code, stdout, stderr = github_job(tmp_path, PIPELINE, GITHUB_OUTPUT=str(tmp_path))

    assert code == ExitCode.INVALID
    assert stdout == ""
    assert stderr == (
        f"shipline: error: the GITHUB_OUTPUT file {tmp_path}: is a directory; give a file "
        "name\n")


def test_github_actions_summary_in_sys_stops_run(tmp_path: Path) -> None:
    code, stdout, stderr = github_job(tmp_path, PIPELINE,
                                      GITHUB_STEP_SUMMARY="/sys/shipline-summary.md")

    assert code == ExitCode.INVALID
    assert stdout == ""
    assert stderr == (
        "shipline: error: the GITHUB_STEP_SUMMARY file /sys/shipline-summary.md: cannot "
        "create a file in the folder '/sys' (Permission denied); give a path in a writable "
        "folder\n")
    assert (tmp_path / "output.txt").read_text(encoding="utf-8") == ""


CANARY = """\
version: 1
name: shop
environments:
  prod:
    target:
      type: command
      instances: [web-1, web-2, web-3, web-4]
      deploy: "echo {version} > {instance}.version"
      version: "cat {instance}.version"
      health: "true"
stages:
  - name: canary
    environment: prod
    steps:
      - deploy:
          version: "2.0"
          strategy: canary
          steps:
            - set_weight: 25
            - set_weight: 50
"""


def test_github_actions_summary_canary_weights(tmp_path: Path) -> None:
    for number in range(1, 5):
        (tmp_path / f"web-{number}.version").write_text("1.0\n", encoding="utf-8")
    code, _, _ = github_job(tmp_path, CANARY)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    chart = summary[summary.index("```mermaid\nxychart-beta"):]

    assert code == ExitCode.OK
    assert chart.startswith(
        "```mermaid\n"
        "xychart-beta\n"
        '    title "Canary weight of deploy 2.0 (canary) in stage canary"\n'
        '    x-axis "time since the first change" ["+0.0s", '
    )
    assert chart.endswith(
        '    y-axis "weight (%)" 0 --> 100\n'
        "    line [25, 50, 100]\n"
        "```\n"
    )


def test_github_actions_summary_note_names_junit(tmp_path: Path) -> None:
    from pipeline.stepsummary import MAX_SUMMARY_BYTES

    # A nearly full summary file leaves 450 bytes: the heading and the notes fit, but
    # not every row.
    used = MAX_SUMMARY_BYTES - 450
    notes = {}
    for case, args in (("without", ()), ("with", ("--junitxml", "report.xml"))):
        summary = tmp_path / "summary.md"
        summary.write_text("x" * used, encoding="utf-8")
        github_job(tmp_path, PIPELINE, *args)
        notes[case] = summary.read_text(encoding="utf-8")[used:]

    assert "left out to keep the summary under GitHub's size limit; run with --junitxml " \
           "PATH for a report of every step._" in notes["without"], notes["without"]
    assert "left out to keep the summary under GitHub's size limit; the JUnit report has " \
           "every step._" in notes["with"], notes["with"]
