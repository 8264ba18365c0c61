"""Tests of pipeline.analysisargs: template arguments, given per use."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.providers import ScriptedProvider, provider_context
from pipeline.analysis import ERROR, SUCCESSFUL, AnalysisError, bind_args, run_analysis
from pipeline.analysisargs import referenced_args

BUILTINS = {"canary_version": "2", "stable_version": "1", "environment": "prod"}

TEMPLATE = {
    "provider": "scripted",
    "args": {"service": None, "window": "5m"},
    "query": 'rate(errors{service="{{ args.service }}",version="{{args.canary_version}}"}'
             '[{{ args.window }}])',
    "success": "result < double(args.limit)",
}


def test_bind_args_substitutes_string_options() -> None:
    options, args = bind_args("t", TEMPLATE, {"service": "shop"}, BUILTINS)

    assert options["query"] == 'rate(errors{service="shop",version="2"}[5m])'
    assert args == {**BUILTINS, "service": "shop", "window": "5m"}


def test_bind_args_leaves_conditions_alone() -> None:
    options, _ = bind_args("t", {**TEMPLATE, "success": "{{ args.service }}"},
                           {"service": "shop"}, BUILTINS)

    assert options["success"] == "{{ args.service }}"


def test_bind_args_converts_numbers() -> None:
    _, args = bind_args("t", TEMPLATE, {"service": "shop", "window": 5}, BUILTINS)

    assert args["window"] == "5"


def test_bind_args_substitutes_nested_values() -> None:
    template = {"provider": "scripted", "args": {"token": None},
                "headers": {"Authorization": "Bearer {{ args.token }}"}, "list": ["{{args.token}}"]}

    options, _ = bind_args("t", template, {"token": "abc"}, BUILTINS)

    assert options["headers"] == {"Authorization": "Bearer abc"}
    assert options["list"] == ["abc"]


@pytest.mark.parametrize(
    ("template", "given", "message"),
    [
        (TEMPLATE, {}, "analysis 't' needs a value for argument 'service': give it in the "
         "use, for example analysis: {template: t, args: {service: ...}}"),
        (TEMPLATE, {"service": "a", "sevice": "b"},
         "analysis 't' has no argument 'sevice'; its arguments: service, window"),
        ({"provider": "x", "args": {"environment": "x"}}, {},
         "analysis 't': argument 'environment' is built in and cannot be declared"),
        ({"provider": "x", "query": "{{ args.missing }}"}, {},
         "analysis 't': 'query' refers to argument 'missing', which is not declared under "
         "'args:'"),
        ({"provider": "x", "args": ["a"]}, {},
         "analysis 't': 'args' must map argument names to defaults (null for a required "
         "argument), got ['a']"),
        (TEMPLATE, {"service": ["a"]},
         "analysis 't': argument 'service' must be a string or a number, got ['a']"),
    ],
)
def test_bind_args_errors(template: dict[str, Any], given: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        bind_args("t", template, given, BUILTINS)

    assert str(caught.value) == message


def test_referenced_args() -> None:
    assert referenced_args({"a": ["{{ args.x }}", {"b": "{{args.y}}-{{ args.x }}"}]}) == {
        "x", "y",
    }


def test_run_analysis_with_args() -> None:
    template = {**TEMPLATE, "args": {**TEMPLATE["args"], "limit": "0.01"}}
    provider = ScriptedProvider([{"result": 0.001}])
    context = provider_context({"errors": template}, provider)
    ref = {"template": "errors", "args": {"service": "shop"}}

    result = run_analysis(ref, context, stable_version="1", canary_version="2", endpoint=None)

    assert result.verdict == SUCCESSFUL
    assert provider.options[0]["query"] == 'rate(errors{service="shop",version="2"}[5m])'


def test_run_analysis_condition_reads_undeclared_arg() -> None:
    provider = ScriptedProvider([{"result": 0.001}])
    context = provider_context({"errors": TEMPLATE}, provider)

    result = run_analysis({"template": "errors", "args": {"service": "shop"}}, context,
                          stable_version="1", canary_version="2", endpoint=None)

    assert result.verdict == ERROR
    assert result.measurements == []
    assert result.message == (
        "analysis 'errors': condition 'result < double(args.limit)' reads args.limit, "
        "which is not declared under 'args:'"
    )
    assert provider.requests == []


def test_condition_may_read_builtin_args() -> None:
    template = {**TEMPLATE, "success": 'args.canary_version == "2" && result < 0.01'}
    provider = ScriptedProvider([{"result": 0.001}])
    context = provider_context({"errors": template}, provider)

    result = run_analysis({"template": "errors", "args": {"service": "shop"}}, context,
                          stable_version="1", canary_version="2", endpoint=None)

    assert result.verdict == SUCCESSFUL
