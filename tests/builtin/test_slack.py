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
from pipeline.builtin import slack
from pipeline.builtin.notifyfacts import Summary, summarize
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.masking import Masker
from pipeline.notification import EVENTS, Notification
from pipeline.plan import Plan
from pipeline.plugins import PluginRegistry

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "data" / "notify" / "slack-block-kit.schema.json")
    .read_text(encoding="utf-8")
)
HOOK_PATH = "/services/T0001/B0002/hooksecret123"


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
        "event": "rolled_back", "uses": "slack", "options": options, "pipeline": "shop",
        "message": "error rate 7% > 1%", "stage": "production", "environment": "production",
        "version": "1.4.2", "outcome": "rolled back", "duration": 95.0, "actor": "octocat",
        "job_url": "https://github.com/octo/shop/actions/runs/42",
    }
    values.update(fields)
    return Notification(**values)


def validate(payload: Any) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(payload)


def test_slack_notify_ignores_other_notifiers(tmp_path: Path) -> None:
    notification = make_notification({"url": "http://127.0.0.1:9/x"}, uses="teams")

    assert slack.shipline_notify(notification, make_context(tmp_path)) is None


def test_slack_notify_posts_block_kit_message(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(HOOK_PATH, Reply(200, "ok"))
    notification = make_notification({"url": recorder.url(HOOK_PATH)})

    delivery = slack.shipline_notify(notification, make_context(tmp_path))

    assert delivery is not None
    assert delivery.uses == "slack"
    assert delivery.ok
    assert delivery.message == f"POST http://127.0.0.1:{recorder.port}: HTTP 200"
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.path == HOOK_PATH
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent").startswith("shipline/")
    payload = request.json()
    validate(payload)
    assert payload["text"] == ":x: shop: rolled back in production: error rate 7% &gt; 1%"
    assert payload["blocks"] == [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": ":x: shop: rolled back in production"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "error rate 7% &gt; 1%"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": "*Pipeline*\nshop"},
            {"type": "mrkdwn", "text": "*Stage*\nproduction"},
            {"type": "mrkdwn", "text": "*Environment*\nproduction"},
            {"type": "mrkdwn", "text": "*Version*\n1.4.2"},
            {"type": "mrkdwn", "text": "*Outcome*\nrolled back"},
            {"type": "mrkdwn", "text": "*Duration*\n1m35s"},
            {"type": "mrkdwn", "text": "*Actor*\noctocat"},
        ]},
        {"type": "context", "elements": [
            {"type": "mrkdwn",
             "text": "<https://github.com/octo/shop/actions/runs/42|View the CI job>"},
        ]},
    ]


@pytest.mark.parametrize("event", [*EVENTS, "step"])
def test_slack_payload_matches_block_kit_for_every_event(event: str) -> None:
    notification = make_notification({}, event=event)

    payload = slack.build_payload(summarize(notification, Masker().mask))

    validate(payload)


@pytest.mark.parametrize(("event", "emoji"), [
    ("succeeded", ":white_check_mark:"),
    ("stage_failed", ":x:"),
    ("rollback_failed", ":rotating_light:"),
    ("paused", ":warning:"),
    ("started", ":information_source:"),
])
def test_slack_payload_emoji_by_outcome(event: str, emoji: str) -> None:
    payload = slack.build_payload(summarize(make_notification({}, event=event),
                                            Masker().mask))

    assert payload["blocks"][0]["text"]["text"].startswith(f"{emoji} shop: ")


def test_slack_payload_without_message_job_or_facts() -> None:
    summary = Summary(headline="shop: run started", severity="info", message="", facts=(),
                      job_url=None)

    payload = slack.build_payload(summary)

    validate(payload)
    assert payload == {
        "text": ":information_source: shop: run started",
        "blocks": [{"type": "header", "text": {
            "type": "plain_text", "emoji": True,
            "text": ":information_source: shop: run started"}}],
    }


def test_slack_payload_shortens_texts_to_limits() -> None:
    summary = Summary(
        headline="p" * 400, severity="failure", message="m" * 5000,
        facts=(("Log", "x" * 2500),), job_url="https://ci.example/job/1",
    )

    payload = slack.build_payload(summary)

    validate(payload)
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")
    section = payload["blocks"][1]["text"]["text"]
    assert len(section) == 3000
    assert section.endswith("m…")
    field = payload["blocks"][2]["fields"][0]["text"]
    assert len(field) == 2000
    assert len(payload["text"]) == 3000


def test_slack_payload_keeps_at_most_50_blocks() -> None:
    facts = tuple((f"Fact {index}", str(index)) for index in range(600))
    summary = Summary(headline="shop: run failed", severity="failure", message="boom",
                      facts=facts, job_url="https://ci.example/job/1")

    payload = slack.build_payload(summary)

    validate(payload)
    blocks = payload["blocks"]
    assert len(blocks) == 50
    assert blocks[-1]["type"] == "context"
    assert [len(block["fields"]) for block in blocks[2:-1]] == [10] * 47
    assert blocks[2]["fields"][0]["text"] == "*Fact 0*\n0"


def test_slack_payload_splits_facts_into_sections_of_ten() -> None:
    facts = tuple((f"Fact {index}", "v") for index in range(23))
    summary = Summary(headline="h", severity="info", message="", facts=facts, job_url=None)

    payload = slack.build_payload(summary)

    validate(payload)
    assert [len(block["fields"]) for block in payload["blocks"][1:]] == [10, 10, 3]


def test_slack_escape_mrkdwn_escapes_markup() -> None:
    assert slack.escape_mrkdwn("<!channel> a & b > c", 100) == (
        "&lt;!channel&gt; a &amp; b &gt; c"
    )


def test_slack_escape_mrkdwn_never_cuts_an_escape() -> None:
    escaped = slack.escape_mrkdwn("abc&&&&", 8)

    assert escaped == "abc…"


def test_slack_job_link_escapes_link_syntax() -> None:
    summary = Summary(headline="h", severity="info", message="", facts=(),
                      job_url="https://ci.example/job?a=1&b=2|x>y")

    payload = slack.build_payload(summary)

    assert payload["blocks"][-1]["elements"][0]["text"] == (
        "<https://ci.example/job?a=1&amp;b=2%7Cx%3Ey|View the CI job>"
    )


def test_slack_job_link_left_out_when_too_long() -> None:
    summary = Summary(headline="h", severity="info", message="", facts=(),
                      job_url="https://ci.example/" + "&" * 1000)

    payload = slack.build_payload(summary)

    validate(payload)
    assert [block["type"] for block in payload["blocks"]] == ["header"]


def test_slack_notify_masks_secrets(tmp_path: Path, recorder: Recorder) -> None:
    masker = Masker(["s3cr3t-value"])
    notification = make_notification({"url": recorder.url(HOOK_PATH)},
                                     message="token s3cr3t-value leaked",
                                     facts={"detail": "s3cr3t-value"})

    delivery = slack.shipline_notify(notification, make_context(tmp_path, masker))

    assert delivery is not None
    assert delivery.ok
    (request,) = recorder.requests
    assert "s3cr3t-value" not in request.text
    assert request.json()["blocks"][1]["text"]["text"] == "token *** leaked"


def test_slack_notify_failure_hides_webhook_url(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(HOOK_PATH, Reply(404, "no_service"))
    context = make_context(tmp_path)
    notification = make_notification({"url": recorder.url(HOOK_PATH)})

    delivery = slack.shipline_notify(notification, context)

    assert delivery is not None
    assert not delivery.ok
    assert delivery.message == (
        f"POST http://127.0.0.1:{recorder.port} failed: HTTP 404: no_service"
    )
    assert context.masker.mask(recorder.url(HOOK_PATH)) == "***"


def test_slack_notify_without_url_fails(tmp_path: Path) -> None:
    delivery = slack.shipline_notify(make_notification({}), make_context(tmp_path))

    assert delivery is not None
    assert not delivery.ok
    assert delivery.message == (
        "option url is missing: set it to the Slack incoming webhook URL"
    )


def test_slack_notify_uses_http_options(tmp_path: Path, recorder: Recorder) -> None:
    recorder.route(HOOK_PATH, Reply(500), Reply(200, "ok"))
    notification = make_notification({"url": recorder.url(HOOK_PATH), "retries": 0})

    delivery = slack.shipline_notify(notification, make_context(tmp_path))

    assert delivery is not None
    assert not delivery.ok
    assert len(recorder.requests) == 1


def test_slack_schema_documents_every_property() -> None:
    (fragment,) = slack.shipline_step_schemas()

    assert fragment.kind == "notify"
    assert fragment.type == "slack"
    for name, prop in fragment.schema["properties"].items():
        assert "title" in prop, name
        assert "description" in prop, name


def test_slack_schema_requires_url() -> None:
    (fragment,) = slack.shipline_step_schemas()
    validator = jsonschema.Draft202012Validator({"type": "object", **fragment.schema})

    assert validator.is_valid({"url": "https://hooks.slack.com/services/x", "timeout": 5})
    assert not validator.is_valid({"timeout": 5})
    assert not validator.is_valid({"url": "hooks.slack.com/services/x"})
