"""Tests for pipeline.schema: the core schema, plugin fragments and validation messages.

Documents go through the real loader, so every message is checked with the line and
column a user would see.
"""

from __future__ import annotations

import copy
import json
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from pipeline.errors import PipelineError, PluginError
from pipeline.loader import Document, load_text
from pipeline.schema import (
    KINDS,
    StepSchema,
    build_schema,
    core_schema,
    validate,
)
from pipeline.schemacheck import compile_fast_check

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"

BUILTIN = "shipline.builtin"

#: Fragments like the built-in plugins register, plus a third-party gate "example".
FRAGMENTS = [
    StepSchema(
        "deploy",
        "canary",
        {
            "properties": {
                "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            },
            "required": ["steps"],
            "$defs": {
                "step": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "set_weight": {"type": "integer", "minimum": 0, "maximum": 100},
                        "pause": {"type": ["number", "string"]},
                        "analysis": {"type": "string"},
                    },
                },
            },
        },
        BUILTIN,
    ),
    StepSchema("deploy", "rolling", {"properties": {"batch_size": {"type": "integer"}}}, BUILTIN),
    StepSchema("deploy", "blue-green", {"properties": {"keep_old": {"type": "string"}}}, BUILTIN),
    StepSchema(
        "scan",
        "trivy",
        {
            "properties": {
                "report": {"type": "string"},
                "fail_on": {"enum": ["low", "medium", "high", "critical"]},
            },
            "required": ["report"],
        },
        BUILTIN,
    ),
    StepSchema("gate", "http", {"properties": {"url": {"type": "string"}}}, BUILTIN),
    StepSchema(
        "notify", "slack", {"properties": {"url": {"type": "string"}}, "required": ["url"]}, BUILTIN
    ),
    StepSchema(
        "target",
        "command",
        {"properties": {"instances": {"type": "array", "items": {"type": "string"}}}},
        BUILTIN,
    ),
    StepSchema("router", "nginx", {"properties": {"config": {"type": "string"}}}, BUILTIN),
    StepSchema(
        "analysis",
        "prometheus",
        {
            "properties": {"query": {"type": "string"}, "success": {"type": "string"}},
            "required": ["query"],
        },
        BUILTIN,
    ),
    StepSchema(
        "gate",
        "example",
        {
            "properties": {
                "url": {"type": "string"},
                "retries": {"type": "integer", "minimum": 0},
                "mode": {"enum": ["strict", "lenient"]},
                "file_mode": {"type": "string"},
            },
            "required": ["url"],
        },
        "shipline_example",
        "An example gate from a third-party plugin.",
    ),
]

SCHEMA = build_schema(FRAGMENTS)

#: A pipeline that uses every part of the format.
FULL_PIPELINE = """\
version: 1
name: shop
description: The shop front end.
vars:
  image_tag: "${CI_COMMIT_SHORT_SHA}"
  replicas: 4
  debug: false
secrets: [SLACK_WEBHOOK_URL]
state: {backend: sqlite, path: .shipline/state.db}
plugins: [shipline_nginx, company.hooks]
environments:
  production:
    target: {type: command, instances: [web-1, web-2]}
    router: {type: nginx, config: /etc/nginx/shop.conf}
    url: https://shop.example
    protect: {branches: [main]}
    freeze:
      - {start: "2024-12-20", end: "2025-01-06", reason: holidays}
      - {cron: "0 17 * * FRI", duration: 64h}
analyses:
  error-rate: {provider: prometheus, query: "rate(errors[5m])", success: "result < 0.01"}
notifications:
  - {uses: slack, url: "${SLACK_WEBHOOK_URL}", on: [failed, rolled_back], required: true}
stages:
  - name: scan
    steps:
      - scan: {uses: trivy, report: trivy.json, fail_on: high}
  - name: production
    needs: [scan]
    when: on_success
    environment: production
    timeout: 1h
    steps:
      - name: canary rollout
        timeout: 30m
        continue_on_error: false
        deploy:
          version: "1.4.2"
          strategy: canary
          steps:
            - set_weight: 20
            - pause: 30s
            - analysis: error-rate
            - set_weight: 100
      - gate: {uses: example, url: "https://shop.example/healthz", retries: 3, mode: strict}
      - notify: {uses: slack, url: "${SLACK_WEBHOOK_URL}"}
"""


def load(text: str) -> Document:
    return load_text(textwrap.dedent(text), "shipline.yml")


def problems(text: str, schema: dict[str, Any] = SCHEMA) -> list[str]:
    """Validate dedented ``text`` and return every formatted diagnostic."""
    with pytest.raises(PipelineError) as raised:
        validate(load(text), schema)
    return [diagnostic.format() for diagnostic in raised.value.diagnostics]


# -- the core schema ---------------------------------------------------------------------


def test_core_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(core_schema())


def test_build_schema_result_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_core_schema_matches_file() -> None:
    assert core_schema() == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _subschemas(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every property, mapping value and definition schema, with where it is."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{where}.properties.{name}", sub
    for name, sub in schema.get("$defs", {}).items():
        yield f"{where}.$defs.{name}", sub
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        yield f"{where}.additionalProperties", additional


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if set(schema) == {"$ref"}:
        name = schema["$ref"].removeprefix("#/$defs/")
        resolved: dict[str, Any] = root["$defs"][name]
        return resolved
    return schema


def test_core_schema_documents_every_property() -> None:
    root = core_schema()
    undocumented = []
    pending = list(_subschemas(root, "$"))
    assert pending

    seen = 0
    while pending:
        where, sub = pending.pop()
        seen += 1
        shown = _resolve(sub, root)
        if "title" not in shown or "description" not in shown:
            undocumented.append(where)
        if shown is sub:
            pending.extend(_subschemas(sub, where))
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            pending.extend(_subschemas(items, f"{where}.items"))

    assert undocumented == []
    assert seen > 60


def test_core_schema_root_has_title_and_description() -> None:
    root = core_schema()
    assert root["title"] == "shipline pipeline"
    assert root["description"]


def test_core_schema_is_cached_but_copied() -> None:
    first = core_schema()
    first["title"] = "changed"
    assert core_schema()["title"] == "shipline pipeline"


# -- building with fragments -------------------------------------------------------------


def test_build_schema_lists_types_sorted() -> None:
    strategy = SCHEMA["$defs"]["deploy"]["properties"]["strategy"]
    assert strategy["enum"] == ["blue-green", "canary", "rolling"]


def test_build_schema_attaches_fragment_with_if_then() -> None:
    branches = SCHEMA["$defs"]["gate"]["allOf"]
    assert branches[0]["if"] == {
        "properties": {"uses": {"const": "example"}},
        "required": ["uses"],
    }
    assert branches[0]["then"]["description"] == "An example gate from a third-party plugin."
    assert SCHEMA["$defs"]["gate"]["unevaluatedProperties"] is False


def test_build_schema_notify_serves_notifications() -> None:
    uses = SCHEMA["$defs"]["notification"]["properties"]["uses"]
    assert uses["enum"] == ["slack"]


def test_build_schema_namespaces_fragment_defs() -> None:
    assert "deploy.canary.step" in SCHEMA["$defs"]
    canary = SCHEMA["$defs"]["deploy"]["allOf"][1]["then"]
    assert canary["properties"]["steps"]["items"] == {"$ref": "#/$defs/deploy.canary.step"}


def test_build_schema_does_not_change_fragment() -> None:
    fragment = {"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}
    original = copy.deepcopy(fragment)
    build_schema([StepSchema("gate", "x", fragment, "p")])
    assert fragment == original


def test_build_schema_odd_type_name_resolves() -> None:
    fragment = {"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}
    schema = build_schema([StepSchema("gate", "my gate/v2~x", fragment, "p")])
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: "my gate/v2~x", a: [5]}
        """
    assert problems(pipeline, schema) == [
        "shipline.yml:6:41: stages[0].steps[0].gate.a: expected a string, got a list",
    ]


def test_build_schema_property_named_like_keyword() -> None:
    fragment = {
        "properties": {"default": {"$ref": "#/$defs/choice"}, "enum": {"type": "string"}},
        "$defs": {"choice": {"enum": ["a", "b"]}},
    }
    schema = build_schema([StepSchema("gate", "pick", fragment, "p")])
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: pick, default: c}
        """
    assert problems(pipeline, schema) == [
        "shipline.yml:6:37: stages[0].steps[0].gate.default: 'c' is not one of 'a', 'b'",
    ]


def test_build_schema_duplicate_type() -> None:
    duplicate = StepSchema("deploy", "canary", {}, "shipline_fancy_canary")
    with pytest.raises(PluginError) as raised:
        build_schema([*FRAGMENTS, duplicate])
    assert str(raised.value) == (
        "plugin 'shipline.builtin' and plugin 'shipline_fancy_canary' both register the "
        "strategy 'canary': block one of them with -p no:NAME"
    )


def test_build_schema_same_type_in_two_kinds() -> None:
    fragments = [StepSchema("gate", "http", {}, "a"), StepSchema("scan", "http", {}, "b")]
    schema = build_schema(fragments)
    assert schema["$defs"]["gate"]["properties"]["uses"]["enum"] == ["http"]


def test_build_schema_invalid_fragment() -> None:
    broken = StepSchema("gate", "example", {"properties": {"retries": {"type": "integr"}}}, "bad")
    with pytest.raises(PluginError) as raised:
        build_schema([broken])
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "'integr' is not valid under any of the given schemas (at $.properties.retries.type)"
    )


def test_build_schema_unchecked_plugin_skips_metaschema() -> None:
    unchecked = StepSchema("gate", "example", {"properties": {"n": {"type": "integr"}}}, "ok")
    schema = build_schema([unchecked], unchecked_plugins={"ok"})
    assert schema["$defs"]["gate"]["properties"]["uses"]["enum"] == ["example"]


def test_build_schema_unchecked_plugins_leave_others_checked() -> None:
    broken = StepSchema("gate", "example", {"properties": {"retries": {"type": "integr"}}}, "bad")
    with pytest.raises(PluginError) as raised:
        build_schema([broken], unchecked_plugins={"ok"})
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "'integr' is not valid under any of the given schemas (at $.properties.retries.type)"
    )


def test_build_schema_fragment_not_object() -> None:
    broken = StepSchema("gate", "example", ["url"], "bad")  # type: ignore[arg-type]
    with pytest.raises(PluginError) as raised:
        build_schema([broken])
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "expected a JSON Schema object, got list"
    )


def test_build_schema_fragment_not_json() -> None:
    broken = StepSchema("gate", "example", {"default": {1, 2}}, "bad")
    with pytest.raises(PluginError) as raised:
        build_schema([broken])
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "set is not JSON data: {1, 2}"
    )


def test_build_schema_fragment_ref_outside_defs() -> None:
    broken = StepSchema("gate", "example", {"properties": {"a": {"$ref": "#/$defs/name"}}}, "bad")
    with pytest.raises(PluginError) as raised:
        build_schema([broken])
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "$ref '#/$defs/name' names a definition that its $defs does not contain"
    )


def test_build_schema_fragment_remote_ref() -> None:
    remote = {"properties": {"a": {"$ref": "https://example.com/s.json"}}}
    with pytest.raises(PluginError) as raised:
        build_schema([StepSchema("gate", "example", remote, "bad")])
    assert str(raised.value) == (
        "plugin 'bad' registers an invalid schema for the gate 'example': "
        "$ref 'https://example.com/s.json' must point into the fragment's own $defs"
    )


def test_build_schema_unknown_kind() -> None:
    with pytest.raises(PluginError) as raised:
        build_schema([StepSchema("deploi", "x", {}, "bad")])
    assert str(raised.value) == (
        "plugin 'bad' registers a schema of unknown kind 'deploi': expected one of "
        "'deploy', 'scan', 'gate', 'notify', 'target', 'router' or 'analysis'"
    )


def test_build_schema_empty_type() -> None:
    with pytest.raises(PluginError) as raised:
        build_schema([StepSchema("scan", "", {})])
    assert str(raised.value) == (
        "a plugin without a name registers a scanner schema with an invalid type '': "
        "expected a non-empty string"
    )


def test_build_schema_kinds_cover_every_selector() -> None:
    fragments = [StepSchema(kind, "t", {}, "p") for kind in KINDS]
    schema = build_schema(fragments)
    for name in ("deploy", "scan", "gate", "notify", "target", "router", "analysis"):
        assert "allOf" in schema["$defs"][name], name


# -- valid documents ---------------------------------------------------------------------


def test_validate_full_pipeline() -> None:
    document = load(FULL_PIPELINE)
    before = copy.deepcopy(document.data)
    validate(document, SCHEMA)
    assert document.data == before


def test_validate_minimal_pipeline() -> None:
    text = "version: 1\nname: a\nstages: [{name: s, steps: [{gate: {uses: http}}]}]\n"
    validate(load(text), SCHEMA)


# -- messages, word for word -------------------------------------------------------------


def test_validate_enum_did_you_mean() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy:
                  version: "1.4.2"
                  strategy: canery
                  steps: [{set_weight: 10}]
        """
    assert problems(pipeline) == [
        "shipline.yml:8:21: stages[0].steps[0].deploy.strategy: 'canery' is not one of "
        "'blue-green', 'canary', 'rolling' (did you mean 'canary'?)",
    ]


def test_validate_enum_without_close_match() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: "1", strategy: big-bang}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:42: stages[0].steps[0].deploy.strategy: 'big-bang' is not one of "
        "'blue-green', 'canary', 'rolling'",
    ]


def test_validate_enum_with_no_registered_type() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: "1", strategy: canary}
        """
    assert problems(pipeline, build_schema([])) == [
        "shipline.yml:6:42: stages[0].steps[0].deploy.strategy: "
        "'canary' is not registered by any loaded plugin",
    ]


def test_validate_unknown_key() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            neeeds: [build]
            steps:
              - scan: {uses: trivy, report: trivy.json}
        """
    assert problems(pipeline) == [
        "shipline.yml:5:5: stages[0]: unknown key 'neeeds' (did you mean 'needs'?)",
    ]


def test_validate_unknown_top_level_key() -> None:
    pipeline = """\
        version: 1
        name: shop
        stagse:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:1:1: missing required key 'stages'",
        "shipline.yml:3:1: unknown key 'stagse' (did you mean 'stages'?)",
    ]


def test_validate_unknown_key_next_to_correct_one() -> None:
    pipeline = """\
        version: 1
        name: shop
        stage: []
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:3:1: unknown key 'stage' (did you mean 'state'?)",
    ]


def test_validate_unknown_key_without_close_match() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            colour: blue
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:5:5: stages[0]: unknown key 'colour'",
    ]


def test_validate_missing_required_key() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
        """
    assert problems(pipeline) == [
        "shipline.yml:4:5: stages[0]: missing required key 'steps'",
    ]


def test_validate_missing_required_keys_of_mapping_value() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy:
                  strategy: rolling
        """
    assert problems(pipeline) == [
        "shipline.yml:6:9: stages[0].steps[0].deploy: missing required key 'version'",
    ]


def test_validate_missing_top_level_keys() -> None:
    assert problems("description: nothing yet\n") == [
        "shipline.yml:1:1: missing required key 'name'",
        "shipline.yml:1:1: missing required key 'stages'",
        "shipline.yml:1:1: missing required key 'version'",
    ]


def test_validate_wrong_type() -> None:
    pipeline = """\
        version: 1
        name: [a, b]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:2:7: name: expected a string, got a list",
    ]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("{a: 1}", "a mapping"), ('"yes"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_validate_wrong_type_names(value: str, type_name: str) -> None:
    pipeline = f"""\
        version: 1
        name: shop
        stages:
          - name: scan
            needs: {value}
            steps: [{{gate: {{uses: http}}}}]
        """
    assert problems(pipeline) == [
        f"shipline.yml:5:12: stages[0].needs: expected a list, got {type_name}",
    ]


def test_validate_wrong_type_union() -> None:
    pipeline = """\
        version: 1
        name: shop
        vars:
          tags: [a, b]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:9: vars.tags: expected a string, number or boolean, got a list",
    ]


def test_validate_wrong_type_integer() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: example, url: "https://x", retries: "3"}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:58: stages[0].steps[0].gate.retries: expected an integer, got a string",
    ]


def test_validate_boolean_where_string_expected() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: true, strategy: rolling}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:27: stages[0].steps[0].deploy.version: expected a string, "
        'got a boolean (quote the value: "true")',
    ]


def test_validate_null_where_string_expected() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy:
                  version: null
                  strategy: rolling
        """
    assert problems(pipeline) == [
        "shipline.yml:7:20: stages[0].steps[0].deploy.version: expected a string, "
        'got null (quote the value: "null")',
    ]


def test_validate_step_without_kind() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - gate: {uses: http}
              - name: forgot the kind
        """
    assert problems(pipeline) == [
        "shipline.yml:7:9: stages[0].steps[1]: a step needs exactly one of 'deploy', 'scan', "
        "'gate' or 'notify' (found none)",
    ]


def test_validate_step_with_two_kinds() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - gate: {uses: http}
              - deploy: {version: "1", strategy: rolling}
                gate: {uses: http}
        """
    assert problems(pipeline) == [
        "shipline.yml:7:9: stages[0].steps[1]: a step needs exactly one of 'deploy', 'scan', "
        "'gate' or 'notify' (found 'deploy' and 'gate')",
    ]


def test_validate_step_with_misspelled_kind() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - depoly: {version: "1", strategy: rolling}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:9: stages[0].steps[0]: a step needs exactly one of 'deploy', 'scan', "
        "'gate' or 'notify' (found none)",
        "shipline.yml:6:9: stages[0].steps[0]: unknown key 'depoly' (did you mean 'deploy'?)",
    ]


def test_validate_name_pattern() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: my stage
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:11: stages[0].name: 'my stage' is not a valid name: use letters, "
        "digits, '.', '_' and '-', starting with a letter or digit",
    ]


def test_validate_duration_pattern() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            timeout: 5 minutes
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:5:14: stages[0].timeout: '5 minutes' is not a valid duration: use a "
        "number of seconds or a value like 500ms, 30s, 5m, 1h",
    ]


def test_validate_duration_negative() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            steps:
              - gate: {uses: http}
                timeout: -5
        """
    assert problems(pipeline) == [
        "shipline.yml:7:18: stages[0].steps[0].timeout: must be 0 or more, got -5",
    ]


def test_validate_duration_accepts_forms() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            timeout: 1m30s
            steps:
              - {gate: {uses: http}, timeout: 500ms}
              - {gate: {uses: http}, timeout: 2.5}
              - {gate: {uses: http}, timeout: 0}
        """
    validate(load(pipeline), SCHEMA)


def test_validate_variable_name_pattern() -> None:
    pipeline = """\
        version: 1
        name: shop
        vars:
          image-tag: abc
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:3: vars: 'image-tag' is not a valid variable name: use letters, digits "
        "and '_', starting with a letter or '_'",
    ]


def test_validate_environment_name_pattern() -> None:
    pipeline = """\
        version: 1
        name: shop
        environments:
          "prod env": {target: {type: command}}
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:3: environments: 'prod env' is not a valid name: use letters, digits, "
        "'.', '_' and '-', starting with a letter or digit",
    ]


def test_validate_module_name_pattern() -> None:
    pipeline = """\
        version: 1
        name: shop
        plugins: [shipline-nginx]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:3:11: plugins[0]: 'shipline-nginx' is not a valid module name: use a "
        "Python module name such as shipline_nginx or company.hooks",
    ]


def test_validate_const() -> None:
    pipeline = """\
        version: 2
        name: shop
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:1:10: version: must be 1, got 2",
    ]


def test_validate_const_string_version() -> None:
    pipeline = """\
        version: "1"
        name: shop
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:1:10: version: must be 1, got '1'",
    ]


def test_validate_enum_when() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            when: allways
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:5:11: stages[0].when: 'allways' is not one of 'on_success', "
        "'on_failure', 'always' (did you mean 'always'?)",
    ]


def test_validate_min_items_stages() -> None:
    assert problems("version: 1\nname: shop\nstages: []\n") == [
        "shipline.yml:3:9: stages: must not be empty",
    ]


def test_validate_min_items_steps() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: scan
            steps: []
        """
    assert problems(pipeline) == [
        "shipline.yml:5:12: stages[0].steps: must not be empty",
    ]


def test_validate_unique_items() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: a
            steps: [{gate: {uses: http}}]
          - name: b
            needs: [a, a]
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:7:16: stages[1].needs: 'a' appears more than once",
    ]


def test_validate_notification_event() -> None:
    pipeline = """\
        version: 1
        name: shop
        notifications:
          - {uses: slack, url: "https://hooks.example", on: [failed, rolledback]}
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:62: notifications[0].on[1]: 'rolledback' is not one of 'started', "
        "'stage_succeeded', 'stage_failed', 'blocked', 'analysis_failed', 'rolled_back', "
        "'rollback_failed', 'succeeded', 'failed', 'paused' (did you mean 'rolled_back'?)",
    ]


def test_validate_notification_options_from_fragment() -> None:
    pipeline = """\
        version: 1
        name: shop
        notifications:
          - uses: slack
            channel: "#deploys"
            on: [failed]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:5: notifications[0]: missing required key 'url'",
        "shipline.yml:5:5: notifications[0]: unknown key 'channel'",
    ]


def test_validate_notification_needs_events() -> None:
    pipeline = """        version: 1
        name: shop
        notifications:
          - {uses: slack, url: "https://hooks.slack.invalid/x"}
        stages:
          - name: scan
            steps: [{gate: {uses: http, url: "http://127.0.0.1:1/"}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:4:5: notifications[0]: missing required key 'on'",
    ]


def test_validate_environment_errors() -> None:
    pipeline = """\
        version: 1
        name: shop
        environments:
          production:
            target: {type: command, instances: [web-1], hosts: 2}
            router: {config: nginx.conf}
            state: frozen
        analyses:
          error-rate: {query: "rate(errors[5m])"}
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:5:49: environments.production.target: unknown key 'hosts'",
        "shipline.yml:6:5: environments.production.router: missing required key 'type'",
        "shipline.yml:7:5: environments.production: unknown key 'state'",
        "shipline.yml:9:3: analyses.error-rate: missing required key 'provider'",
    ]


def test_validate_state_backend() -> None:
    pipeline = """\
        version: 1
        name: shop
        state: {backend: mysql}
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:3:18: state.backend: 'mysql' is not one of 'sqlite', 'postgresql'",
    ]


def test_validate_secrets_unique_and_named() -> None:
    pipeline = """\
        version: 1
        name: shop
        secrets: [TOKEN, TOKEN, 2FA]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:3:18: secrets: 'TOKEN' appears more than once",
        "shipline.yml:3:25: secrets[2]: '2FA' is not a valid variable name: use letters, "
        "digits and '_', starting with a letter or '_'",
    ]


# -- plugin fragments --------------------------------------------------------------------


def test_validate_fragment_errors_have_positions() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate:
                  uses: example
                  url: [https://shop.example]
                  mode: strickt
                  retires: 3
              - gate:
                  uses: example
                  retries: -1
        """
    assert problems(pipeline) == [
        "shipline.yml:8:16: stages[0].steps[0].gate.url: expected a string, got a list",
        "shipline.yml:9:17: stages[0].steps[0].gate.mode: 'strickt' is not one of 'strict', "
        "'lenient' (did you mean 'strict'?)",
        "shipline.yml:10:11: stages[0].steps[0].gate: unknown key 'retires' "
        "(did you mean 'retries'?)",
        "shipline.yml:11:9: stages[0].steps[1].gate: missing required key 'url'",
        "shipline.yml:13:20: stages[0].steps[1].gate.retries: must be 0 or more, got -1",
    ]


def test_validate_fragment_unknown_type_hides_its_options() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: exampel, url: "https://shop.example", retries: 2}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:22: stages[0].steps[0].gate.uses: 'exampel' is not one of 'example', "
        "'http' (did you mean 'example'?)",
    ]


def test_validate_fragment_option_of_other_type() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: http, url: "https://shop.example", retries: 2}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:57: stages[0].steps[0].gate: unknown key 'retries'",
    ]


def test_validate_fragment_defs_reference() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy:
                  version: "2"
                  strategy: canary
                  steps:
                    - set_weight: 120
                    - set_wieght: 50
                    - {}
        """
    assert problems(pipeline) == [
        "shipline.yml:10:27: stages[0].steps[0].deploy.steps[0].set_weight: "
        "must be 100 or less, got 120",
        "shipline.yml:11:15: stages[0].steps[0].deploy.steps[1]: unknown key 'set_wieght' "
        "(did you mean 'set_weight'?)",
        "shipline.yml:12:15: stages[0].steps[0].deploy.steps[2]: must not be empty",
    ]


# -- numbers typed where text is expected ------------------------------------------------


def test_validate_keeps_number_text_for_version() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: 1.10, strategy: rolling}
        """
    document = load(pipeline)
    validate(document, SCHEMA)
    assert document.data["stages"][0]["steps"][0]["deploy"]["version"] == "1.10"


def test_validate_keeps_leading_zeros() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: example, url: "https://x", file_mode: 0755}
        """
    document = load(pipeline)
    validate(document, SCHEMA)
    assert document.data["stages"][0]["steps"][0]["gate"]["file_mode"] == "0755"


def test_validate_keeps_numbers_where_numbers_allowed() -> None:
    pipeline = """\
        version: 1
        name: "1.10"
        vars: {release: 1.10}
        stages:
          - name: "2024"
            steps: [{gate: {uses: http}, timeout: 1.50}]
        """
    document = load(pipeline)
    validate(document, SCHEMA)
    assert document.data["vars"]["release"] == 1.1
    assert document.data["stages"][0]["steps"][0]["timeout"] == 1.5


def test_validate_number_names_become_text() -> None:
    pipeline = """\
        version: 1
        name: 2024.10
        stages:
          - name: 01
            steps: [{gate: {uses: http}}]
        """
    document = load(pipeline)
    validate(document, SCHEMA)
    assert document.data["name"] == "2024.10"
    assert document.data["stages"][0]["name"] == "01"


def test_validate_number_text_still_checked() -> None:
    pipeline = """\
        version: 1
        name: shop
        secrets: [123]
        stages:
          - name: scan
            steps: [{gate: {uses: http}}]
        """
    assert problems(pipeline) == [
        "shipline.yml:3:11: secrets[0]: '123' is not a valid variable name: use letters, "
        "digits and '_', starting with a letter or '_'",
    ]


def test_validate_replaces_numbers_along_other_errors() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: 1.10, strategy: rollin}
        """
    document = load(pipeline)
    with pytest.raises(PipelineError) as raised:
        validate(document, SCHEMA)
    assert [d.format() for d in raised.value.diagnostics] == [
        "shipline.yml:6:43: stages[0].steps[0].deploy.strategy: 'rollin' is not one of "
        "'blue-green', 'canary', 'rolling' (did you mean 'rolling'?)",
    ]
    assert document.data["stages"][0]["steps"][0]["deploy"]["version"] == "1.10"


# -- every error, in order, once ---------------------------------------------------------


def test_validate_reports_all_errors_sorted() -> None:
    pipeline = """\
        version: 1
        name: my shop
        stages:
          - name: build
            steps:
              - gate: {uses: htp}
          - name: deploy
            when: sometimes
            steps: []
        """
    assert problems(pipeline) == [
        "shipline.yml:2:7: name: 'my shop' is not a valid name: use letters, digits, '.', '_' "
        "and '-', starting with a letter or digit",
        "shipline.yml:6:22: stages[0].steps[0].gate.uses: 'htp' is not one of 'example', "
        "'http' (did you mean 'http'?)",
        "shipline.yml:8:11: stages[1].when: 'sometimes' is not one of 'on_success', "
        "'on_failure', 'always'",
        "shipline.yml:9:12: stages[1].steps: must not be empty",
    ]


def test_validate_error_carries_diagnostics() -> None:
    with pytest.raises(PipelineError) as raised:
        validate(load("version: 1\nname: shop\nstages: []\n"), SCHEMA)
    diagnostic = raised.value.diagnostics[0]
    assert diagnostic.path == ("stages",)
    assert diagnostic.mark is not None
    assert (diagnostic.mark.line, diagnostic.mark.column) == (3, 9)


def test_validate_no_duplicate_for_wrong_type() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps:
              - deploy: {version: "1", strategy: [canary]}
        """
    assert problems(pipeline) == [
        "shipline.yml:6:42: stages[0].steps[0].deploy.strategy: expected a string, got a list",
    ]


def test_validate_step_that_is_not_mapping() -> None:
    pipeline = """\
        version: 1
        name: shop
        stages:
          - name: production
            steps: [deploy]
        """
    assert problems(pipeline) == [
        "shipline.yml:5:13: stages[0].steps[0]: expected a mapping, got a string",
    ]


# -- the fast check agrees with jsonschema on the pipeline schema ------------------------


def _mutations(data: Any, rng: random.Random) -> Any:
    """Return a copy of ``data`` with one random change somewhere inside it."""
    mutated = copy.deepcopy(data)
    containers: list[Any] = []
    pending = [mutated]
    while pending:
        node = pending.pop()
        containers.append(node)
        children = node.values() if isinstance(node, dict) else node
        pending.extend(child for child in children if isinstance(child, (dict, list)))

    node = rng.choice(containers)
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    replacements: list[Any] = [
        None, True, 7, -1, 2.5, "", "x y", "canary", "on_success", [], {}, ["a", "a"], {"k": 1},
    ]
    action = rng.randrange(4)
    if action == 0 and keys:
        del node[rng.choice(keys)]
    elif action == 1 and isinstance(node, dict):
        node[rng.choice(["neeeds", "uses", "strategy", "steps", "url", "mode", "on"])] = (
            rng.choice(replacements)
        )
    elif action == 2 and keys:
        node[rng.choice(keys)] = rng.choice(replacements)
    elif isinstance(node, list) and node:
        node.append(copy.deepcopy(rng.choice(node)))
    return mutated


def test_fast_check_matches_jsonschema_on_mutations() -> None:
    fast = compile_fast_check(SCHEMA)
    assert fast is not None
    validator = Draft202012Validator(SCHEMA)
    original = load(FULL_PIPELINE).data
    rng = random.Random(20240601)

    verdicts = []
    for _ in range(800):
        mutated = _mutations(original, rng)
        expected = validator.is_valid(mutated)
        assert (fast.check(mutated) is not None) == expected, json.dumps(mutated)
        verdicts.append(expected)

    assert True in verdicts
    assert False in verdicts


def _without_fast_check(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` plus a keyword that the fast check does not implement.

    ``unevaluatedItems: false`` next to an ``items`` that covers every item changes no
    verdict and no message, but makes validate() use jsonschema alone.
    """
    slow = copy.deepcopy(schema)
    branches = slow["$defs"]["deploy"]["allOf"]
    canary = next(
        b["then"] for b in branches if b["if"]["properties"]["strategy"]["const"] == "canary"
    )
    canary["properties"]["steps"]["unevaluatedItems"] = False
    return slow


SLOW_SCHEMA = _without_fast_check(SCHEMA)

#: Invalid documents that exercise each way validate() finds and words problems.
INVALID_SAMPLES = [
    "version: 1\nname: shop\nstages: [{name: a, neeeds: [], steps: [{gate: {uses: http}}]}]\n",
    "version: 2\nname: my shop\nstages: []\n",
    "version: 1\nname: shop\nstages: [{name: a, steps: [{}, {gate: {uses: http}, scan: {}}]}]\n",
    "version: 1\nname: shop\nstages: [{name: a, steps: [{deploy: {version: 1.1, strategy: x}}]}]\n",
    "version: 1\nname: shop\nsecrets: [123, A, A]\nstages: [{name: a, steps: [{scan: {}}]}]\n",
    "version: 1\nname: shop\nvars: {1x: [1]}\nstages: [{name: a, timeout: 5 min, steps: [x]}]\n",
    FULL_PIPELINE.replace("retries: 3", "retries: -3, retires: 1").replace("strict", "1"),
    FULL_PIPELINE.replace("set_weight: 20", "set_weight: 20, pause: 1").replace("type: ngi", "x: "),
]


def test_unsupported_keyword_outside_branches_leaves_no_fast_check() -> None:
    slow = copy.deepcopy(SCHEMA)
    slow["$defs"]["stage"]["unevaluatedItems"] = False
    assert compile_fast_check(slow) is None


def test_unsupported_branch_keyword_defers() -> None:
    # The canary branch is compiled when a document first needs it.
    fast = compile_fast_check(SLOW_SCHEMA)
    assert fast is not None
    canary = load(FULL_PIPELINE).data
    assert "strategy: canary" in FULL_PIPELINE
    assert fast.check(canary) is None
    assert Draft202012Validator(SLOW_SCHEMA).is_valid(canary)

    rolling = yaml.safe_load(
        "version: 1\nname: shop\nstages: [{name: a, steps: "
        "[{deploy: {version: '1', strategy: rolling}}]}]\n")
    assert fast.check(rolling) is not None


@pytest.mark.parametrize("text", INVALID_SAMPLES)
def test_validate_messages_same_without_fast_check(text: str) -> None:
    fast_messages = problems(text, SCHEMA)
    slow_messages = problems(text, SLOW_SCHEMA)
    assert fast_messages == slow_messages
    assert fast_messages


def _outcome(text: str, schema: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    document = load_text(text, "shipline.yml")
    try:
        validate(document, schema)
    except PipelineError as error:
        return [diagnostic.format() for diagnostic in error.diagnostics], document.data
    return [], document.data


def test_validate_number_replacement_same_without_fast_check() -> None:
    rng = random.Random(7)
    original = load(FULL_PIPELINE).data
    outcomes = []
    for _ in range(150):
        changed = copy.deepcopy(original)
        leaves = []
        pending: list[Any] = [changed]
        while pending:
            node = pending.pop()
            for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
                if isinstance(value, (dict, list)):
                    pending.append(value)
                else:
                    leaves.append((node, key))
        for node, key in rng.sample(leaves, rng.randrange(1, 4)):
            node[key] = rng.choice([1, 1.5, 10, 0, -3, 2.25])
        text = yaml.safe_dump(changed, sort_keys=False)

        fast_outcome = _outcome(text, SCHEMA)
        assert fast_outcome == _outcome(text, SLOW_SCHEMA), text
        outcomes.append(fast_outcome[0] == [])

    assert True in outcomes
    assert False in outcomes


# -- large documents ---------------------------------------------------------------------


def _large_pipeline(stage_count: int) -> str:
    lines = [
        "version: 1",
        "name: large",
        "environments:",
        "  production:",
        "    target: {type: command, instances: [web-1, web-2]}",
        "stages:",
    ]
    for index in range(stage_count):
        lines += [f"  - name: stage-{index}", "    environment: production"]
        if index:
            lines.append(f"    needs: [stage-{index - 1}]")
        lines += [
            "    steps:",
            "      - scan: {uses: trivy, report: trivy.json, fail_on: high}",
            "      - deploy:",
            f'          version: "1.{index}"',
            "          strategy: canary",
            "          steps: [{set_weight: 20}, {pause: 30s}, {set_weight: 100}]",
            "        timeout: 10m",
        ]
        if index % 2:
            lines.append("      - gate: {uses: example, url: https://shop.example, retries: 2}")
    return "\n".join(lines) + "\n"


def test_validate_large_pipeline_accepts_valid() -> None:
    document = load_text(_large_pipeline(2000), "shipline.yml")
    unchanged = copy.deepcopy(document.data)

    validate(document, SCHEMA)

    assert len(document.data["stages"]) == 2000
    assert document.data == unchanged


def test_validate_large_pipeline_reports_errors() -> None:
    text = _large_pipeline(2000).replace("strategy: canary", "strategy: canery", 1)
    with pytest.raises(PipelineError) as raised:
        validate(load_text(text, "shipline.yml"), SCHEMA)
    assert [d.format() for d in raised.value.diagnostics] == [
        "shipline.yml:13:21: stages[0].steps[1].deploy.strategy: 'canery' is not one of "
        "'blue-green', 'canary', 'rolling' (did you mean 'canary'?)",
    ]
