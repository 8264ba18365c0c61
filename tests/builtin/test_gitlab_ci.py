"""GitLab CI output of a real ``shipline`` subprocess run: log sections, dotenv, JUnit."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

from lxml import etree

from helpers.cijob import run_shipline
from pipeline.builtin.gitlab_ci import section_end, section_name, section_start
from pipeline.exitcodes import ExitCode

XSD = Path(__file__).resolve().parents[1] / "data" / "jenkins-junit-10.xsd"

PIPELINE = """\
version: 1
name: shop
environments:
  prod:
    target: {type: none}
    url: "https://shop.example.com/"
stages:
  - name: checks
    steps:
      - name: smoke
        gate: {uses: pass}
      - name: smoke
        gate: {uses: echo, message: "second smoke"}
  - name: ship.eu-west
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
      - name: verify
        gate: {uses: fail, message: "100% down\\nsee the log"}
"""


def gitlab_job(tmp_path: Path, pipeline: str = PIPELINE, *args: str,
               gitlab: str = "true") -> tuple[int, str, str]:
    (tmp_path / "shipline.yml").write_text(pipeline, encoding="utf-8")
    result = run_shipline("run", "-p", "helpers.stepplugin", *args, cwd=tmp_path,
                          env={"GITLAB_CI": gitlab})
    return result.returncode, result.stdout, result.stderr


def normalized(text: str) -> str:
    """Replace timestamps and measured durations with fixed text."""
    text = re.sub(r"section_(start|end):\d+:", r"section_\1:TIME:", text)
    text = re.sub(r"\((?:\d+(?:\.\d+)?(?:ms|s|m|h))+\)", "(T)", text)
    return re.sub(r" in (?:\d+(?:\.\d+)?(?:ms|s|m|h))+;", " in T;", text)


def test_gitlab_sections_exact(tmp_path: Path) -> None:
    code, stdout, _ = gitlab_job(tmp_path)

    assert code == ExitCode.FAILED
    assert normalized(stdout) == textwrap.dedent("""\
        \x1b[0Ksection_start:TIME:shipline_1_checks[collapsed=true]\r\x1b[0Kstage checks
          PASSED   smoke (T)
          PASSED   smoke (T): second smoke
        \x1b[0Ksection_end:TIME:shipline_1_checks\r\x1b[0K
        \x1b[0Ksection_start:TIME:shipline_2_ship.eu-west[collapsed=true]\r\x1b[0Kstage ship.eu-west -> prod
          PASSED   deploy 2.0 (record) (T): deployed 2.0
          FAILED   verify (T): 100% down
              see the log
          PASSED   rollback: deploy 2.0 (record) (T): restored the version before 2.0
        \x1b[0Ksection_end:TIME:shipline_2_ship.eu-west\r\x1b[0K
        stage ship.eu-west: failed: verify: 100% down see the log
        shop: 2 stage(s): 1 passed, 1 failed in T; exit 1 (a step or a required notification failed; changes were rolled back)
        """)  # noqa: E501


def test_gitlab_section_timestamps_are_now(tmp_path: Path) -> None:
    before = int(time.time())
    _, stdout, _ = gitlab_job(tmp_path)
    after = int(time.time())
    stamps = [int(stamp) for stamp in re.findall(r"section_(?:start|end):(\d+):", stdout)]

    assert len(stamps) == 4
    assert all(before <= stamp <= after for stamp in stamps)


def test_gitlab_sections_off_without_variable(tmp_path: Path) -> None:
    _, stdout, _ = gitlab_job(tmp_path, gitlab="false")

    assert "section_" not in stdout
    assert "\x1b" not in stdout


def test_gitlab_section_name_characters() -> None:
    assert section_name(3, "deploy: eu/west (v1.2)") == "shipline_3_deploy__eu_west__v1.2_"
    assert section_name(1, "café") == "shipline_1_caf_"


def test_gitlab_section_format() -> None:
    assert section_start("shipline_1_a", 1700000000, "stage a") == (
        "\x1b[0Ksection_start:1700000000:shipline_1_a[collapsed=true]\r\x1b[0Kstage a"
    )
    assert section_end("shipline_1_a", 1700000001) == (
        "\x1b[0Ksection_end:1700000001:shipline_1_a\r\x1b[0K"
    )


def test_gitlab_dotenv_report(tmp_path: Path) -> None:
    code, _, _ = gitlab_job(tmp_path, PIPELINE, "--dotenv", "out/deploy.env",
                            "--junitxml", "report.xml")

    assert code == ExitCode.FAILED
    assert (tmp_path / "out" / "deploy.env").read_text(encoding="utf-8") == (
        "SHIPLINE_EXIT_CODE=1\n"
        "SHIPLINE_OUTCOME=failed\n"
        "SHIPLINE_DEPLOYED_VERSION=2.0\n"
        "SHIPLINE_ROLLED_BACK=true\n"
        "SHIPLINE_ENVIRONMENT_URL=https://shop.example.com/\n"
        f"SHIPLINE_REPORT_PATH={tmp_path / 'report.xml'}\n"
    )


def test_gitlab_dotenv_multiline_value_left_out(tmp_path: Path) -> None:
    # A version cannot contain a line break (validate rejects it), an environment URL can.
    pipeline = PIPELINE.replace('url: "https://shop.example.com/"',
                                'url: "https://shop.example.com/\\nINJECTED=1"')
    _, _, stderr = gitlab_job(tmp_path, pipeline, "--dotenv", "deploy.env")
    text = (tmp_path / "deploy.env").read_text(encoding="utf-8")

    assert "INJECTED" not in text
    assert "SHIPLINE_ENVIRONMENT_URL" not in text
    assert "SHIPLINE_OUTCOME=failed\n" in text
    assert ("shipline: ERROR: output 'environment-url' left out of the dotenv report: "
            "GitLab does not support values with line breaks") in stderr


def test_gitlab_dotenv_invalid_pipeline(tmp_path: Path) -> None:
    code, _, _ = gitlab_job(tmp_path, "version: 1\nname: shop\nstages: []\nbogus: 1\n",
                            "--dotenv", "deploy.env")

    assert code == ExitCode.INVALID
    assert (tmp_path / "deploy.env").read_text(encoding="utf-8").startswith(
        "SHIPLINE_EXIT_CODE=2\nSHIPLINE_OUTCOME=invalid\n"
    )


def test_gitlab_dotenv_path_is_directory(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    code, stdout, stderr = gitlab_job(tmp_path, PIPELINE, "--dotenv", "reports")

    assert code == ExitCode.INVALID
    assert stdout == ""
    assert stderr == "shipline: error: --dotenv reports: is a directory; give a file name\n"


def test_gitlab_dotenv_path_in_sys_folder(tmp_path: Path) -> None:
    code, stdout, stderr = gitlab_job(tmp_path, PIPELINE, "--dotenv", "/sys/deploy.env")

    assert code == ExitCode.INVALID
    assert stdout == ""
    assert stderr == (
        "shipline: error: --dotenv /sys/deploy.env: cannot create a file in the folder "
        "'/sys' (Permission denied); give a path in a writable folder\n")


def test_gitlab_junit_names_unique_and_valid(tmp_path: Path) -> None:
    gitlab_job(tmp_path, PIPELINE, "--junitxml", "report.xml")
    root = etree.parse(str(tmp_path / "report.xml")).getroot()
    cases = list(root.iter("testcase"))
    keys = [(case.get("classname"), case.get("name")) for case in cases]

    assert keys == [
        ("shop.checks", "smoke"),
        ("shop.checks", "smoke (2)"),
        ("shop.ship.eu-west", "deploy 2.0 (record)"),
        ("shop.ship.eu-west", "verify"),
        ("shop.ship.eu-west", "rollback: deploy 2.0 (record)"),
    ]
    for case in cases:
        del case.attrib["file"]
        del case.attrib["line"]
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(root), schema.error_log
