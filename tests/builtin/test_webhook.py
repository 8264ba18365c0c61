"""The webhook notifier, end to end: ``shipline run`` posting to a recording server."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import pipeline
from helpers import stepplugin
from helpers.recorder import RecordedRequest, Recorder, Reply
from pipeline.builtin.webhook import build_body, encode_body, request_headers, rfc3339
from pipeline.exitcodes import ExitCode
from pipeline.notification import Notification
from pipeline.webhooksig import verify_signature

PLUGINS = ("-p", "helpers.stepplugin", "-p", "pipeline.builtin.webhook",
           "-p", "pipeline.notifications")
SECRET = "whsec-test-0123456789"
GITHUB = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/shop",
    "GITHUB_RUN_ID": "77",
    "GITHUB_ACTOR": "octocat",
}


def webhook_schema() -> dict[str, object]:
    here = Path(pipeline.__file__).resolve().parent
    for folder in (here / "schemas", here.parent / "schemas"):
        if (folder / "webhook.schema.json").is_file():
            loaded: dict[str, object] = json.loads(
                (folder / "webhook.schema.json").read_text(encoding="utf-8"))
            return loaded
    raise AssertionError("webhook.schema.json not found")


VALIDATOR = jsonschema.Draft202012Validator(
    webhook_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


def run(shipline_cli, path: Path, *extra: str, env: dict[str, str] | None = None):
    return shipline_cli("run", *PLUGINS, str(path), *extra, env=env)


def subscription(url: str, events: str, extra: str = "") -> str:
    return (f'  - {{uses: webhook, url: "{url}", secret: "${{HOOK_SECRET}}", '
            f"on: [{events}]{extra}}}\n")


def pipeline_text(subscriptions: str, steps: str = "      - gate: {uses: pass}\n",
                  environment: bool = False) -> str:
    text = "version: 1\nname: shop\nsecrets: [HOOK_SECRET]\n"
    if subscriptions:
        text += "notifications:\n" + subscriptions
    if environment:
        text += "environments:\n  prod: {target: {type: none}}\n"
    text += "stages:\n  - name: ship\n"
    if environment:
        text += "    environment: prod\n"
    return text + "    steps:\n" + steps


def events(requests: list[RecordedRequest]) -> list[str]:
    return [request.json()["event"] for request in requests]


@pytest.fixture
def env() -> dict[str, str]:
    return {"HOOK_SECRET": SECRET, **GITHUB}


def test_webhook_posts_signed_valid_bodies(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        path = write_pipeline(pipeline_text(
            subscription(recorder.url("/hook"), "started, stage_succeeded, succeeded"),
            steps="      - deploy: {strategy: record, version: '2.0'}\n"
                  f"      - notify: {{uses: webhook, url: \"{recorder.url('/step')}\", "
                  "secret: \"${HOOK_SECRET}\", message: deployed}\n",
            environment=True))
        result = run(shipline_cli, path, env=env)
        requests = recorder.wait_for(4)

    assert result.exit_code == ExitCode.OK
    assert sorted(events(requests)) == ["stage_succeeded", "started", "step", "succeeded"]
    for request in requests:
        body = request.json()
        assert list(VALIDATOR.iter_errors(body)) == []
        assert verify_signature(SECRET, request.header("X-Shipline-Signature") or "",
                                request.body)
        assert request.header("Idempotency-Key") == body["id"]
        assert request.header("X-Shipline-Event") == body["event"]
        assert request.header("Content-Type") == "application/json"
        assert body["actor"] == "octocat"
        assert body["job_url"] == "https://github.com/acme/shop/actions/runs/77"
    assert len({request.header("Idempotency-Key") for request in requests}) == 4


def test_webhook_body_fields(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        path = write_pipeline(pipeline_text(
            subscription(recorder.url("/"), "succeeded"),
            steps="      - deploy: {strategy: record, version: '2.0'}\n", environment=True))
        run(shipline_cli, path, env=env)
        [request] = recorder.wait_for(1)

    body = request.json()
    assert body["schema_version"] == 1
    assert body["event"] == "succeeded"
    assert body["pipeline"] == "shop"
    assert body["stage"] is None
    assert body["environment"] is None
    assert body["version"] == "2.0"
    assert body["outcome"] == "succeeded"
    assert body["message"] == "shop: run succeeded (exit 0)"
    assert body["required"] is False
    assert body["facts"] == {"exit_code": 0}


def test_webhook_masks_secrets(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        path = write_pipeline(pipeline_text(
            "", steps=f"      - notify: {{uses: webhook, url: \"{recorder.url('/')}\", "
                      "secret: \"${HOOK_SECRET}\", message: \"key ${HOOK_SECRET}\"}\n"))
        run(shipline_cli, path, env=env)
        [request] = recorder.wait_for(1)

    assert request.json()["message"] == "key ***"
    assert SECRET not in request.text


def test_webhook_extra_headers_cannot_replace_signature(shipline_cli, write_pipeline,
                                                        env) -> None:
    extra = ', headers: {Authorization: "Bearer t0ken", X-Shipline-Signature: forged}'
    with Recorder() as recorder:
        path = write_pipeline(pipeline_text(subscription(recorder.url("/"), "started", extra)))
        run(shipline_cli, path, env=env)
        [request] = recorder.wait_for(1)

    assert request.header("Authorization") == "Bearer t0ken"
    assert verify_signature(SECRET, request.header("X-Shipline-Signature") or "", request.body)


def test_webhook_failed_delivery_only_warns(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(500, "down"))
        path = write_pipeline(pipeline_text(
            subscription(recorder.url("/"), "succeeded", ", retries: 0")))
        result = run(shipline_cli, path, env=env)

    assert result.exit_code == ExitCode.OK
    assert (f"warning: notification 'succeeded' via webhook failed: POST "
            f"http://127.0.0.1:{recorder.port} failed: HTTP 500: down") in result.stdout


def test_webhook_required_subscription_fails_run(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(404, "no such hook"))
        path = write_pipeline(pipeline_text(
            subscription(recorder.url("/"), "started", ", required: true")))
        result = run(shipline_cli, path, env=env)

    assert result.exit_code == ExitCode.FAILED
    assert ("shipline: ERROR: the run fails because 1 required notification(s) failed; the "
            "first: notification 'started' via webhook failed: POST "
            f"http://127.0.0.1:{recorder.port} failed: HTTP 404: no such hook") in result.stderr


def test_webhook_required_step_fails(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(404, "no such hook"))
        path = write_pipeline(pipeline_text(
            "", steps=f"      - notify: {{uses: webhook, url: \"{recorder.url('/')}\", "
                      "secret: \"${HOOK_SECRET}\", message: hi, required: true}\n"
                      "      - gate: {uses: pass}\n"))
        result = run(shipline_cli, path, env=env)

    assert result.exit_code == ExitCode.FAILED
    assert "SKIPPED  gate pass: step 'notify webhook' failed" in result.stdout
    assert "FAILED   notify webhook (" in result.stdout
    assert (f"): POST http://127.0.0.1:{recorder.port} failed: HTTP 404: no such hook\n"
            in result.stdout)


def test_webhook_required_step_passes_when_sent(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        path = write_pipeline(pipeline_text(
            "", steps=f"      - notify: {{uses: webhook, url: \"{recorder.url('/')}\", "
                      "secret: \"${HOOK_SECRET}\", required: true}\n"))
        result = run(shipline_cli, path, env=env)

    assert result.exit_code == ExitCode.OK
    assert "PASSED   notify webhook" in result.stdout
    assert ": sent" in result.stdout


def test_webhook_step_queued_not_waited(shipline_cli, write_pipeline, env) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(500))
        path = write_pipeline(pipeline_text(
            "", steps=f"      - notify: {{uses: webhook, url: \"{recorder.url('/')}\", "
                      "secret: \"${HOOK_SECRET}\", retries: 0}\n"))
        result = run(shipline_cli, path, env=env)

    assert result.exit_code == ExitCode.OK
    assert ": queued" in result.stdout
    assert "notification 'step' via webhook failed" in result.stdout


def test_webhook_tls_with_ca_bundle(shipline_cli, write_pipeline, env) -> None:
    with Recorder(tls=True) as recorder:
        extra = f', ca_bundle: "{recorder.ca_bundle}"'
        path = write_pipeline(pipeline_text(subscription(recorder.url("/"), "started", extra)))
        result = run(shipline_cli, path, env=env)
        [request] = recorder.wait_for(1)

    assert result.exit_code == ExitCode.OK
    assert request.json()["event"] == "started"
    assert "WARNING" not in result.stderr


def test_webhook_secret_required(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(pipeline_text(
        "  - {uses: webhook, url: 'https://hooks.example.invalid/x', on: [failed]}\n"))
    result = shipline_cli("validate", *PLUGINS, str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == f"{path}:5:5: notifications[0]: missing required key 'secret'\n"


def test_build_body_facts_become_scalars() -> None:
    notification = Notification(
        event="failed", uses="webhook", options={}, pipeline="shop", message="m",
        duration=-1.0, time=1_800_000_000.25,
        facts={"exit_code": 1, "ratio": float("nan"), "hosts": ["a", "b"], "none": None})
    body = build_body(notification, str)

    assert body["facts"] == {"exit_code": 1, "ratio": "nan", "hosts": "['a', 'b']",
                             "none": None}
    assert body["duration"] == 0.0
    assert body["time"] == "2027-01-15T08:00:00.250Z"
    assert list(VALIDATOR.iter_errors({**body, "id": "k"})) == []


def test_request_headers_sign_exact_body() -> None:
    notification = Notification(event="started", uses="webhook", options={}, pipeline="shop",
                                message="m", idempotency_key="run-1")
    body = encode_body(build_body(notification, str))
    headers = request_headers(notification, body, SECRET, {}, now=1_800_000_000)

    assert headers["Idempotency-Key"] == "run-1"
    assert headers["X-Shipline-Signature"].startswith("t=1800000000,v1=")
    assert verify_signature(SECRET, headers["X-Shipline-Signature"], body, now=1_800_000_000)


def test_rfc3339_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
