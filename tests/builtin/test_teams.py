from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest

from helpers.recorder import Recorder, Reply
from pipeline.builtin import teams
from pipeline.builtin.notifyfacts import Summary, summarize
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.masking import Masker
from pipeline.notification import EVENTS, Notification
from pipeline.plan import Plan
from pipeline.plugins import PluginRegistry

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "data" / "notify" / "teams-adaptive-card.schema.json")
    .read_text(encoding="utf-8")
)
HOOK_ROUTE = "/workflows/abc123/triggers/manual/paths/invoke"
HOOK_PATH = f"{HOOK_ROUTE}?api-version=1&sig=hooksecret123"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as running:
        yield running


def make_context(tmp_path: Path, masker: Masker | None = None) -> RunContext:
    plan = Plan(
        name="shop", file=tmp_path / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry(),
                    masker=masker or Masker())
    return RunContext(plan=plan, config=config)


def make_notification(options: Mapping[str, Any], **fields: Any) -> Notification:
    values: dict[str, Any] = {
        "event": "succeeded", "uses": "teams", "options": options, "pipeline": "shop",
        "message": "all stages passed", "stage": "production", "environment": "production",
        "version": "1.4.2", "outcome": "succeeded", "duration": 3725.0, "actor": "octocat",
        "job_url": "https://github.com/octo/shop/actions/runs/42",
    }
    values.update(fields)
    return Notification(**values)


def validate(payload: Any) -> None:
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(payload)


def test_teams_notify_ignores_other_notifiers(tmp_path: Path) -> None:
    notification = make_notification({"url": "http://127.0.0.1:9/x"}, uses="slack")

    assert teams.shipline_notify(notification, make_context(tmp_path)) is None


def test_teams_notify_posts_adaptive_card(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(HOOK_ROUTE, Reply(202))
    notification = make_notification({"url": recorder.url(HOOK_PATH)})

    delivery = teams.shipline_notify(notification, make_context(tmp_path))

    assert delivery is not None
    assert delivery.uses == "teams"
    assert delivery.ok
    assert delivery.message == f"POST http://127.0.0.1:{recorder.port}: HTTP 202"
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.path == HOOK_PATH
    assert request.header("Content-Type") == "application/json"
    payload = request.json()
    validate(payload)
    assert payload == {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "shop: run succeeded in production",
                     "size": "Large", "weight": "Bolder", "color": "Good", "wrap": True},
                    {"type": "TextBlock", "text": "all stages passed", "wrap": True},
                    {"type": "FactSet", "facts": [
                        {"title": "Pipeline", "value": "shop"},
                        {"title": "Stage", "value": "production"},
                        {"title": "Environment", "value": "production"},
                        {"title": "Version", "value": "1.4.2"},
                        {"title": "Outcome", "value": "succeeded"},
                        {"title": "Duration", "value": "1h2m5s"},
                        {"title": "Actor", "value": "octocat"},
                    ]},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "View the CI job",
                             "url": "https://github.com/octo/shop/actions/runs/42"}],
            },
        }],
    }


@pytest.mark.parametrize("event", [*EVENTS, "step"])
def test_teams_payload_matches_card_schema_for_every_event(event: str) -> None:
    payload = teams.build_payload(summarize(make_notification({}, event=event),
                                            Masker().mask))

    validate(payload)


@pytest.mark.parametrize(("event", "color"), [
    ("stage_succeeded", "Good"),
    ("failed", "Attention"),
    ("rollback_failed", "Attention"),
    ("blocked", "Warning"),
    ("started", "Accent"),
])
def test_teams_payload_color_by_outcome(event: str, color: str) -> None:
    payload = teams.build_payload(summarize(make_notification({}, event=event),
                                            Masker().mask))

    assert payload["attachments"][0]["content"]["body"][0]["color"] == color


def test_teams_payload_without_message_job_or_facts() -> None:
    summary = Summary(headline="shop: run started", severity="info", message=" ", facts=(),
                      job_url=None)

    payload = teams.build_payload(summary)

    validate(payload)
    card = payload["attachments"][0]["content"]
    assert [element["type"] for element in card["body"]] == ["TextBlock"]
    assert "actions" not in card


def test_teams_payload_stays_below_size_limit() -> None:
    facts = tuple((f"Fact {index}", "€" * 600) for index in range(40))
    summary = Summary(headline="h" * 300, severity="failure", message="é" * 20_000,
                      facts=facts, job_url="https://ci.example/job/1")

    payload = teams.build_payload(summary)

    validate(payload)
    assert len(json.dumps(payload).encode()) <= teams.MAX_PAYLOAD_BYTES
    body = payload["attachments"][0]["content"]["body"]
    assert len(body[0]["text"]) == 200
    assert body[-1]["type"] == "FactSet"
    assert body[-1]["facts"][0] == {"title": "Fact 0", "value": "€" * 499 + "…"}


def test_teams_payload_keeps_short_message_whole() -> None:
    summary = Summary(headline="h", severity="info", message="x" * 7000, facts=(),
                      job_url=None)

    payload = teams.build_payload(summary)

    assert payload["attachments"][0]["content"]["body"][1]["text"] == "x" * 7000


def test_teams_payload_leaves_out_too_long_job_url() -> None:
    summary = Summary(headline="h", severity="info", message="", facts=(),
                      job_url="https://ci.example/" + "a" * 3000)

    payload = teams.build_payload(summary)

    assert "actions" not in payload["attachments"][0]["content"]


def test_teams_notify_masks_secrets(tmp_path: Path, recorder: Recorder) -> None:
    masker = Masker(["s3cr3t-value"])
    notification = make_notification({"url": recorder.url(HOOK_PATH)},
                                     message="token s3cr3t-value leaked",
                                     version="s3cr3t-value")

    delivery = teams.shipline_notify(notification, make_context(tmp_path, masker))

    assert delivery is not None
    assert delivery.ok
    (request,) = recorder.requests
    assert "s3cr3t-value" not in request.text
    body = request.json()["attachments"][0]["content"]["body"]
    assert body[1]["text"] == "token *** leaked"


def test_teams_notify_failure_hides_webhook_url(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(HOOK_ROUTE, Reply(400, '{"error": "bad card"}'))
    context = make_context(tmp_path)
    notification = make_notification({"url": recorder.url(HOOK_PATH)})

    delivery = teams.shipline_notify(notification, context)

    assert delivery is not None
    assert not delivery.ok
    assert delivery.message == (
        f'POST http://127.0.0.1:{recorder.port} failed: HTTP 400: {{"error": "bad card"}}'
    )
    assert "hooksecret123" not in delivery.message
    assert context.masker.mask(recorder.url(HOOK_PATH)) == "***"


def test_teams_notify_verifies_tls_with_ca_bundle(tmp_path: Path) -> None:
    with Recorder(tls=True) as recorder:
        notification = make_notification({"url": recorder.url("/hook"),
                                           "ca_bundle": recorder.ca_bundle})

        delivery = teams.shipline_notify(notification, make_context(tmp_path))

        assert delivery is not None
        assert delivery.ok
        assert delivery.message == f"POST https://127.0.0.1:{recorder.port}: HTTP 200"


def test_teams_notify_rejects_unknown_certificate(tmp_path: Path) -> None:
    with Recorder(tls=True) as recorder:
        notification = make_notification({"url": recorder.url("/hook"), "retries": 0})

        delivery = teams.shipline_notify(notification, make_context(tmp_path))

        assert delivery is not None
        assert not delivery.ok
        assert delivery.message.startswith(
            f"POST https://127.0.0.1:{recorder.port} failed: TLS verification failed: "
        )
        assert recorder.requests == []


def test_teams_notify_without_url_fails(tmp_path: Path) -> None:
    delivery = teams.shipline_notify(make_notification({}), make_context(tmp_path))

    assert delivery is not None
    assert not delivery.ok
    assert delivery.message == "option url is missing: set it to the Teams workflow webhook URL"


def test_teams_schema_documents_every_property() -> None:
    (fragment,) = teams.shipline_step_schemas()

    assert fragment.kind == "notify"
    assert fragment.type == "teams"
    for name, prop in fragment.schema["properties"].items():
        assert "title" in prop, name
        assert "description" in prop, name


def test_teams_schema_requires_url() -> None:
    (fragment,) = teams.shipline_step_schemas()
    validator = jsonschema.Draft202012Validator({"type": "object", **fragment.schema})

    assert validator.is_valid({"url": "https://example.invalid/workflows/x", "retries": 1})
    assert not validator.is_valid({"retries": 1})
