"""No secret reaches any artifact of a real ``shipline run``, in any encoding.

The pipeline's commands print every secret as given, URL-encoded, JSON-escaped and
base64-encoded (standard and URL-safe alphabets, alone and at each of the three
offsets inside a longer value). A deploy fails so that a rollback, failure messages
and notifications carry that output too. Then every artifact of the run is searched:
stdout, stderr (JSON log at INFO level), the JUnit report, the event log, the metrics
file and every request the webhook receiver recorded. Base64 is searched by decoding
every base64-looking word of each artifact, so a form the masker missed is found even
when this test did not think of it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote, unquote

from helpers.recorder import Recorder

SECRETS = {
    # Listed under secrets: and used in the file.
    "DEPLOY_TOKEN": "tok-9f8e7d6c5b4a",
    # Used in the file; its name marks it as secret. '/', '+' and '=' change its
    # URL-encoded form.
    "WEBHOOK_SECRET": "whsec_Zx81/+q==Hw",
    # Only in the environment: neither listed nor used by the file.
    "CLOUD_API_KEY": "AKIAEXAMPLE1234567",
    # Multi-line, only in the environment.
    "SSH_PRIVATE_KEY": "-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----",
}

EMIT = '''\
import base64, json, os, sys
from urllib.parse import quote

NAMES = NAMES_HERE

def forms(value):
    data = value.encode()
    yield value
    yield quote(value, safe="")
    yield json.dumps(value)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for wrapped in (data, data + b"\\n", b"user:" + data, b"a" + data + b"z",
                        b"ab" + data + b"xyz", b"abc" + data):
            encoded = encode(wrapped).decode()
            yield encoded
            yield quote(encoded, safe="")

for name in NAMES:
    for text in forms(os.environ[name]):
        print(f"{sys.argv[1]} {name}: {text}")
        print(f"{sys.argv[1]} {name}: {text}", file=sys.stderr)

if sys.argv[1] == "version":
    print("1.0")
if sys.argv[1] == "deploy" and sys.argv[3] == "2.0":
    # The last line becomes the step's message, which reaches every report.
    last = [f"deploy failed: {os.environ['DEPLOY_TOKEN']}"]
    for name in NAMES:
        value = os.environ[name].encode()
        last.append(base64.b64encode(b"user:" + value).decode())
        last.append(quote(base64.urlsafe_b64encode(value).decode(), safe=""))
    print(" ".join(last))
    sys.exit(1)
'''

PIPELINE = """\
    version: 1
    name: leak-test
    secrets: [DEPLOY_TOKEN]
    notifications:
      - uses: webhook
        url: ${HOOK_URL}
        secret: ${WEBHOOK_SECRET}
        on: [started, stage_succeeded, stage_failed, rolled_back, failed]
    environments:
      production:
        target:
          type: command
          instances: [web-1]
          deploy: python3 emit.py deploy {instance} {version}
          version: python3 emit.py version {instance}
          health: python3 emit.py health {instance}
    stages:
      - name: check
        steps:
          - gate: {uses: command, command: python3 emit.py gate}
          - notify:
              uses: webhook
              url: ${HOOK_URL}
              secret: ${WEBHOOK_SECRET}
              message: "deploying with token ${DEPLOY_TOKEN}"
              required: true
      - name: production
        environment: production
        steps:
          - deploy: {strategy: rolling, version: "2.0"}
    """

_BASE64_WORD = re.compile(r"[A-Za-z0-9+/_=-]{6,}")


def decoded_words(text: str) -> list[bytes]:
    """Decode each base64-looking word of ``text`` at each start offset, both alphabets."""
    found = []
    for word in _BASE64_WORD.findall(text):
        for start in range(4):
            body = word[start:].rstrip("=")
            body = body[: len(body) - len(body) % 4]
            for translated in (body, body.replace("-", "+").replace("_", "/")):
                try:
                    found.append(base64.b64decode(translated, validate=True))
                except (binascii.Error, ValueError):
                    continue
    return found


def leaks(text: str) -> list[str]:
    """Return a description of each secret form found in ``text``."""
    problems = []
    for name, value in SECRETS.items():
        parts = [value, *(line.strip() for line in value.splitlines())]
        for part in parts:
            if part in text:
                problems.append(f"{name} as given")
            if quote(part, safe="") in text:
                problems.append(f"{name} URL-encoded")
            if json.dumps(part)[1:-1] in text:
                problems.append(f"{name} JSON-escaped")
        for candidate in (text, unquote(text)):
            for decoded in decoded_words(candidate):
                if any(part.encode() in decoded for part in parts if len(part) >= 8):
                    problems.append(f"{name} base64-encoded: {decoded[:40]!r}")
                    break
    return problems


def test_run_artifacts_contain_no_secret(tmp_path: Path) -> None:
    names = list(SECRETS)
    (tmp_path / "emit.py").write_text(EMIT.replace("NAMES_HERE", repr(names)),
                                      encoding="utf-8")
    (tmp_path / "shipline.yml").write_text(textwrap.dedent(PIPELINE), encoding="utf-8")

    with Recorder() as recorder:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOOK_URL": recorder.url("/hook"),
            "SHIPLINE_DISABLE_PLUGIN_AUTOLOAD": "1",
            **SECRETS,
        }
        completed = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "-vv", "--log-format", "json",
             "--junitxml", "junit.xml", "--events", "events.jsonl",
             "--metrics", "metrics.prom"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        requests = recorder.wait_for(5)

    artifacts = {
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        "junit.xml": (tmp_path / "junit.xml").read_text(encoding="utf-8"),
        "events.jsonl": (tmp_path / "events.jsonl").read_text(encoding="utf-8"),
        "metrics.prom": (tmp_path / "metrics.prom").read_text(encoding="utf-8"),
    }
    for index, request in enumerate(requests):
        headers = "\n".join(f"{key}: {value}" for key, value in request.headers.items())
        artifacts[f"request {index}"] = f"{request.path}\n{headers}\n{request.text}"

    # The run did what the test needs: the deploy failed and was rolled back, and the
    # commands' output reached the reports.
    assert completed.returncode == 1, completed.stderr
    assert "rolled back" in artifacts["events.jsonl"] or "rollback" in artifacts["events.jsonl"]
    for name in ("stdout", "stderr", "junit.xml", "events.jsonl"):
        assert "deploy failed: ***" in artifacts[name], name
    assert any("***" in request.text for request in requests)

    found = {name: leaks(text) for name, text in artifacts.items()}
    assert {name: problems for name, problems in found.items() if problems} == {}
