from __future__ import annotations

import argparse
import gc
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest

from helpers.recorder import Recorder, Reply
from pipeline import __version__
from pipeline.builtin import github
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.masking import Masker
from pipeline.notification import Delivery, Notification
from pipeline.plan import Plan
from pipeline.plugins import PluginRegistry

TOKEN = "ghs_exampletoken1234567890"
DEPLOYMENTS = "/repos/octo/shop/deployments"
JOB_URL = "https://github.com/octo/shop/actions/runs/42"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as running:
        running.route(DEPLOYMENTS, Reply(201, json.dumps({"id": 1001, "ref": "abc123"})))
        running.route(f"{DEPLOYMENTS}/1001/statuses", Reply(201, '{"id": 1}'))
        yield running


@pytest.fixture(autouse=True)
def _no_github_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_REF"):
        monkeypatch.delenv(name, raising=False)


def make_context(tmp_path: Path) -> RunContext:
    plan = Plan(
        name="shop", file=tmp_path / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry(), masker=Masker())
    return RunContext(plan=plan, config=config)


def github_options(recorder: Recorder, **options: Any) -> dict[str, Any]:
    values = {"token": TOKEN, "repository": "octo/shop", "ref": "abc123",
              "api_url": recorder.url(""), "retries": 0}
    values.update(options)
    return values


def make_notification(options: Mapping[str, Any], event: str = "stage_succeeded",
                      **fields: Any) -> Notification:
    values: dict[str, Any] = {
        "event": event, "uses": "github", "options": options, "pipeline": "shop",
        "message": "", "stage": "production", "environment": "production",
        "version": "1.4.2", "duration": 60.0, "actor": "octocat", "job_url": JOB_URL,
    }
    values.update(fields)
    return Notification(**values)


def run_event(options: Mapping[str, Any], event: str, environment: str | None,
              context: RunContext) -> Delivery:
    notification = make_notification(options, event, environment=environment,
                                     stage="production" if environment else None)
    delivery = github.shipline_notify(notification, context)
    assert delivery is not None
    return delivery


def test_github_notify_ignores_other_notifiers(tmp_path: Path) -> None:
    notification = make_notification({"token": TOKEN}, uses="slack")

    assert github.shipline_notify(notification, make_context(tmp_path)) is None


def test_github_run_creates_deployment_once(tmp_path: Path, recorder: Recorder) -> None:
    context = make_context(tmp_path)
    options = github_options(recorder, environment="production",
                             environment_url="https://shop.example")

    deliveries = [run_event(options, event, environment, context) for event, environment in
                  [("started", None), ("paused", "production"),
                   ("stage_succeeded", "production"), ("succeeded", None)]]

    assert [d.ok for d in deliveries] == [True, True, True, True]
    assert [d.message for d in deliveries] == [
        f"status {state} posted to deployment 1001 (production) in octo/shop"
        for state in ("in_progress", "queued", "success", "success")
    ]
    requests = recorder.requests
    assert [(r.method, r.path) for r in requests] == [
        ("POST", DEPLOYMENTS),
        *[("POST", f"{DEPLOYMENTS}/1001/statuses")] * 4,
    ]
    assert requests[0].json() == {
        "ref": "abc123", "task": "deploy", "auto_merge": False, "required_contexts": [],
        "environment": "production", "description": "shop 1.4.2",
        "transient_environment": False, "production_environment": True,
        "payload": {"pipeline": "shop", "version": "1.4.2"},
    }
    assert [r.json() for r in requests[1:]] == [
        {"state": "in_progress", "description": "shop: run started",
         "log_url": JOB_URL, "environment_url": "https://shop.example"},
        {"state": "queued", "description": "shop: waiting for approval in production",
         "log_url": JOB_URL, "environment_url": "https://shop.example"},
        {"state": "success", "description": "shop: stage succeeded in production",
         "log_url": JOB_URL, "environment_url": "https://shop.example"},
        {"state": "success", "description": "shop: run succeeded",
         "log_url": JOB_URL, "environment_url": "https://shop.example"},
    ]


def test_github_requests_carry_documented_headers(tmp_path: Path, recorder: Recorder) -> None:
    run_event(github_options(recorder), "stage_succeeded", "production",
              make_context(tmp_path))

    for request in recorder.wait_for(2):
        assert request.header("Authorization") == f"Bearer {TOKEN}"
        assert request.header("Accept") == "application/vnd.github+json"
        assert request.header("X-GitHub-Api-Version") == "2022-11-28"
        assert request.header("User-Agent") == f"shipline/{__version__}"
        assert request.header("Content-Type") == "application/json"


@pytest.mark.parametrize(("event", "state"), [
    ("started", "in_progress"),
    ("step", "in_progress"),
    ("paused", "queued"),
    ("stage_succeeded", "success"),
    ("succeeded", "success"),
    ("stage_failed", "failure"),
    ("failed", "failure"),
    ("analysis_failed", "failure"),
    ("blocked", "failure"),
    ("rolled_back", "failure"),
    ("rollback_failed", "error"),
])
def test_github_event_states(tmp_path: Path, recorder: Recorder, event: str,
                             state: str) -> None:
    delivery = run_event(github_options(recorder), event, "production", make_context(tmp_path))

    assert delivery.ok
    assert recorder.requests[1].json()["state"] == state


def test_github_state_option_overrides_event(tmp_path: Path, recorder: Recorder) -> None:
    notification = make_notification(github_options(recorder, state="inactive"), "step",
                                     message="preview app removed")

    delivery = github.shipline_notify(notification, make_context(tmp_path))

    assert delivery is not None
    assert delivery.message == (
        "status inactive posted to deployment 1001 (production) in octo/shop"
    )
    assert recorder.requests[1].json() == {
        "state": "inactive", "description": "preview app removed", "log_url": JOB_URL,
    }


def test_github_unknown_event_posts_nothing(tmp_path: Path, recorder: Recorder) -> None:
    delivery = run_event(github_options(recorder), "measured", "production",
                         make_context(tmp_path))

    assert delivery.ok
    assert delivery.message == "event measured has no deployment state; nothing posted"
    assert recorder.requests == []


def test_github_deployment_per_environment(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(DEPLOYMENTS, Reply(201, '{"id": 7}'), Reply(201, '{"id": 8}'))
    context = make_context(tmp_path)
    options = github_options(recorder)

    run_event(options, "stage_succeeded", "staging", context)
    run_event(options, "stage_succeeded", "production", context)
    run_event(options, "succeeded", None, context)

    assert [r.path for r in recorder.requests[:4]] == [
        DEPLOYMENTS, f"{DEPLOYMENTS}/7/statuses", DEPLOYMENTS, f"{DEPLOYMENTS}/8/statuses",
    ]
    assert [r.json()["environment"] for r in recorder.requests[::2][:2]] == [
        "staging", "production",
    ]
    assert recorder.requests[2].json()["production_environment"] is True
    assert recorder.requests[0].json()["production_environment"] is False


def test_github_new_run_new_deployment(tmp_path: Path, recorder: Recorder) -> None:
    options = github_options(recorder)

    run_event(options, "stage_succeeded", "production", make_context(tmp_path))
    gc.collect()
    run_event(options, "stage_succeeded", "production", make_context(tmp_path))

    assert [r.path for r in recorder.requests].count(DEPLOYMENTS) == 2


def test_github_deployment_ids_forget_finished_runs(tmp_path: Path) -> None:
    ids = github.DeploymentIds()
    target = github.Target(api_url="https://api.github.com", repository="octo/shop",
                           token=TOKEN, ref="abc123", environment="production",
                           environment_url=None, production=True, transient=False)
    context = make_context(tmp_path)
    old_key = ids.key(context, "shop", target)
    ids.set(old_key, 1001)

    del context
    gc.collect()
    ids.key(make_context(tmp_path), "shop", target)

    assert ids.get(old_key) is None


def test_github_concurrent_notifications_create_one_deployment(
        tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(DEPLOYMENTS, Reply(201, '{"id": 1001}', delay=0.05))
    context = make_context(tmp_path)
    options = github_options(recorder)
    deliveries: list[Delivery] = []

    def notify() -> None:
        deliveries.append(run_event(options, "stage_succeeded", "production", context))

    threads = [threading.Thread(target=notify) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert [d.ok for d in deliveries] == [True] * 6
    assert [r.path for r in recorder.requests].count(DEPLOYMENTS) == 1
    assert len(recorder.requests) == 7


def test_github_create_rejected_names_status(tmp_path: Path, recorder: Recorder) -> None:
    body = '{"message": "No ref found for: abc123", "documentation_url": "https://docs"}'
    recorder.route(DEPLOYMENTS, Reply(422, body), Reply(201, '{"id": 1001}'))
    context = make_context(tmp_path)
    options = github_options(recorder)

    first = run_event(options, "started", "production", context)
    second = run_event(options, "stage_succeeded", "production", context)

    assert not first.ok
    assert first.message == (
        "creating a deployment of abc123 to production in octo/shop failed: "
        f"POST http://127.0.0.1:{recorder.port} failed: HTTP 422: {body}"
    )
    assert second.ok
    assert [r.path for r in recorder.requests] == [
        DEPLOYMENTS, DEPLOYMENTS, f"{DEPLOYMENTS}/1001/statuses",
    ]


def test_github_client_error_not_retried(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(DEPLOYMENTS, Reply(403, '{"message": "Resource not accessible"}'))

    delivery = run_event(github_options(recorder, retries=3), "started", "production",
                         make_context(tmp_path))

    assert not delivery.ok
    assert len(recorder.requests) == 1


def test_github_token_never_in_messages(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(DEPLOYMENTS, Reply(401, f'{{"message": "Bad credentials {TOKEN}"}}'))
    context = make_context(tmp_path)

    delivery = run_event(github_options(recorder), "started", "production", context)

    assert not delivery.ok
    assert TOKEN not in delivery.message
    assert delivery.message == (
        "creating a deployment of abc123 to production in octo/shop failed: "
        f'POST http://127.0.0.1:{recorder.port} failed: HTTP 401: '
        '{"message": "Bad credentials ***"}'
    )
    assert context.masker.mask(TOKEN) == "***"


def test_github_status_rejected(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(f"{DEPLOYMENTS}/1001/statuses", Reply(404, '{"message": "Not Found"}'))

    delivery = run_event(github_options(recorder), "failed", "production",
                         make_context(tmp_path))

    assert not delivery.ok
    assert delivery.message == (
        "posting status failure to deployment 1001 (production) in octo/shop failed: "
        f'POST http://127.0.0.1:{recorder.port} failed: HTTP 404: {{"message": "Not Found"}}'
    )


def test_github_accepted_without_id_fails(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(DEPLOYMENTS, Reply(202, '{"message": "Auto-merged main into topic."}'))

    delivery = run_event(github_options(recorder), "started", "production",
                         make_context(tmp_path))

    assert not delivery.ok
    assert delivery.message == (
        "creating a deployment of abc123 to production in octo/shop failed: "
        "HTTP 202 without a deployment id: Auto-merged main into topic."
    )
    assert len(recorder.requests) == 1


def test_github_connection_refused(tmp_path: Path) -> None:
    from helpers.recorder import refused_url

    options = {"token": TOKEN, "repository": "octo/shop", "ref": "abc123",
               "api_url": refused_url("").rstrip("/"), "retries": 0}

    delivery = run_event(options, "started", "production", make_context(tmp_path))

    assert not delivery.ok
    assert delivery.message.startswith("creating a deployment of abc123 to production in "
                                       "octo/shop failed: POST http://127.0.0.1:")
    assert delivery.message.endswith("failed: connection failed: Connection refused")


def test_github_defaults_from_actions_variables(tmp_path: Path, recorder: Recorder,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/shop")
    monkeypatch.setenv("GITHUB_SHA", "0123abcd")
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    options = {"token": TOKEN, "api_url": recorder.url("/"), "retries": 0}

    delivery = run_event(options, "stage_succeeded", "staging", make_context(tmp_path))

    assert delivery.ok
    created = recorder.requests[0]
    assert created.path == DEPLOYMENTS
    assert created.json()["ref"] == "0123abcd"
    assert created.json()["environment"] == "staging"


def test_github_ref_falls_back_to_github_ref(tmp_path: Path, recorder: Recorder,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF", "refs/tags/v1.4.2")
    options = github_options(recorder)
    del options["ref"]

    run_event(options, "stage_succeeded", "production", make_context(tmp_path))

    assert recorder.requests[0].json()["ref"] == "refs/tags/v1.4.2"


def test_github_options_override_flags(tmp_path: Path, recorder: Recorder) -> None:
    options = github_options(recorder, production_environment=False,
                             transient_environment=True)

    run_event(options, "stage_succeeded", "production", make_context(tmp_path))

    created = recorder.requests[0].json()
    assert created["production_environment"] is False
    assert created["transient_environment"] is True


def test_github_status_description_shortened(tmp_path: Path, recorder: Recorder) -> None:
    notification = make_notification(github_options(recorder), "step", message="x" * 500)

    github.shipline_notify(notification, make_context(tmp_path))

    description = recorder.requests[1].json()["description"]
    assert len(description) == 140
    assert description.endswith("…")


@pytest.mark.parametrize(("options", "environment", "message"), [
    ({}, "production",
     "option token is missing: set it to ${GITHUB_TOKEN} or another token allowed to "
     "write deployments"),
    ({"token": TOKEN, "ref": "abc"}, "production",
     "repository is not set: set the repository option to owner/name"),
    ({"token": TOKEN, "ref": "abc", "repository": "shop"}, "production",
     "repository is 'shop': set the repository option to owner/name"),
    ({"token": TOKEN, "repository": "octo/shop"}, "production",
     "no ref to deploy: set the ref option, or run in GitHub Actions, where GITHUB_SHA is "
     "set"),
    ({"token": TOKEN, "repository": "octo/shop", "ref": "abc"}, None,
     "event started belongs to no environment: set the environment option of this "
     "notification"),
])
def test_github_invalid_options(tmp_path: Path, options: dict[str, Any],
                                environment: str | None, message: str) -> None:
    delivery = run_event(options, "started", environment, make_context(tmp_path))

    assert not delivery.ok
    assert delivery.message == message


def test_github_schema_documents_every_property() -> None:
    (fragment,) = github.shipline_step_schemas()

    assert fragment.kind == "notify"
    assert fragment.type == "github"
    for name, prop in fragment.schema["properties"].items():
        assert "title" in prop, name
        assert "description" in prop, name


def test_github_schema_checks_options() -> None:
    (fragment,) = github.shipline_step_schemas()
    validator = jsonschema.Draft202012Validator({"type": "object", **fragment.schema})

    assert validator.is_valid({"token": "t", "repository": "octo/shop", "state": "success"})
    assert not validator.is_valid({"repository": "octo/shop"})
    assert not validator.is_valid({"token": "t", "repository": "shop"})
    assert not validator.is_valid({"token": "t", "state": "done"})


def test_github_statuses_follow_a_failed_run(shipline_cli: Any, write_pipeline: Any,
                                             recorder: Recorder,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "42",
                        "GITHUB_REPOSITORY": "octo/shop", "GITHUB_ACTOR": "octocat",
                        "GITHUB_SHA": "abc123", "DEPLOY_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)
    path = write_pipeline(f"""\
        version: 1
        name: shop
        environments:
          prod: {{target: {{type: none}}}}
        notifications:
          - uses: github
            token: ${{DEPLOY_TOKEN}}
            environment: prod
            api_url: {recorder.url("")}
            on: [started, rolled_back, stage_failed, failed]
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {{strategy: record, version: "2.0"}}
              - gate: {{uses: fail, message: smoke test failed}}
        """)

    result = shipline_cli("run", "-p", "helpers.stepplugin", "-p", "pipeline.builtin.github",
                          str(path))

    assert result.exit_code == 1
    requests = recorder.wait_for(5)
    assert [r.path for r in requests] == [
        DEPLOYMENTS, *[f"{DEPLOYMENTS}/1001/statuses"] * 4,
    ]
    assert requests[0].json()["ref"] == "abc123"
    assert requests[0].json()["environment"] == "prod"
    assert [(r.json()["state"], r.json()["description"]) for r in requests[1:]] == [
        ("in_progress", "shop: run started"),
        ("failure", "shop: rolled back in prod"),
        ("failure", "shop: stage failed in prod"),
        ("failure", "shop: run failed"),
    ]
    assert {r.json()["log_url"] for r in requests[1:]} == {JOB_URL}
    assert TOKEN not in result.stdout + result.stderr


def test_github_run_events_need_environment(shipline_cli: Any, write_pipeline: Any,
                                            tmp_path: Any) -> None:
    write_pipeline("""\
        version: 1
        name: shop
        notifications:
          - {uses: github, token: "${GH_TOKEN}", repository: octo/shop,
             on: [started, failed]}
        stages: [{name: check, steps: [{gate: {uses: command, command: "true"}}]}]
        """)
    result = shipline_cli("validate", cwd=tmp_path, env={"GH_TOKEN": "t-s3cr3t"})
    assert result.exit_code == 2
    assert result.stderr == (
        "shipline.yml:4:5: notifications[0]: run events (failed, started) belong to no "
        "environment: set the 'environment' option of this notification\n"
    )
