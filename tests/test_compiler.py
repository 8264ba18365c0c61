"""Compiling documents into plans: ordering, references, interpolation, freezing."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from pipeline.compiler import compile_document
from pipeline.errors import PipelineError
from pipeline.loader import load_text
from pipeline.plan import When

OWNERS = {("gate", "pass"): "helpers.stepplugin", ("deploy", "record"): "helpers.stepplugin"}


def compile_text(text: str, environ: dict[str, str] | None = None):
    document = load_text(text, "shipline.yml", Path("shipline.yml"))
    return compile_document(document, OWNERS, environ or {})


def errors_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PipelineError) as info:
        compile_text(text, environ)
    return [d.format() for d in info.value.diagnostics]


def test_compile_file_order_without_needs():
    plan = compile_text(
        "version: 1\nname: p\nstages:\n"
        "  - {name: a, steps: [{gate: {uses: pass}}]}\n"
        "  - {name: b, steps: [{gate: {uses: pass}}]}\n"
    ).plan
    assert [s.name for s in plan.stages] == ["a", "b"]


def test_compile_needs_reorders_stages():
    plan = compile_text(
        "version: 1\nname: p\nstages:\n"
        "  - {name: deploy, needs: [build], steps: [{gate: {uses: pass}}]}\n"
        "  - {name: build, steps: [{gate: {uses: pass}}]}\n"
        "  - {name: after, steps: [{gate: {uses: pass}}]}\n"
    ).plan
    assert [s.name for s in plan.stages] == ["build", "deploy", "after"]


def test_compile_cycle_is_named():
    errors = errors_of(
        "version: 1\nname: p\nstages:\n"
        "  - {name: a, needs: [c], steps: [{gate: {uses: pass}}]}\n"
        "  - {name: b, needs: [a], steps: [{gate: {uses: pass}}]}\n"
        "  - {name: c, needs: [b], steps: [{gate: {uses: pass}}]}\n"
    )
    assert errors == [
        "shipline.yml:4:22: stages[0].needs: stages depend on each other in a cycle: "
        "a -> c -> b -> a"
    ]


def test_compile_unknown_needs_suggests_name():
    errors = errors_of(
        "version: 1\nname: p\nstages:\n"
        "  - {name: build, steps: [{gate: {uses: pass}}]}\n"
        "  - {name: ship, needs: [biuld], steps: [{gate: {uses: pass}}]}\n"
    )
    assert errors == [
        "shipline.yml:5:26: stages[1].needs[0]: unknown stage 'biuld' (did you mean 'build'?)"
    ]


def test_compile_needs_itself():
    errors = errors_of(
        "version: 1\nname: p\nstages:\n"
        "  - {name: a, needs: [a], steps: [{gate: {uses: pass}}]}\n"
    )
    assert errors == ["shipline.yml:4:23: stages[0].needs[0]: stage 'a' needs itself"]


def test_compile_duplicate_stage_names():
    errors = errors_of(
        "version: 1\nname: p\nstages:\n"
        "  - name: a\n    steps: [{gate: {uses: pass}}]\n"
        "  - name: a\n    steps: [{gate: {uses: pass}}]\n"
    )
    assert errors == [
        "shipline.yml:6:11: stages[1].name: duplicate stage name 'a' (first used on line 4)"
    ]


def test_compile_unknown_environment():
    errors = errors_of(
        "version: 1\nname: p\n"
        "environments:\n  production: {target: {type: command}}\n"
        "stages:\n"
        "  - {name: a, environment: prod, steps: [{gate: {uses: pass}}]}\n"
    )
    assert errors == [
        "shipline.yml:6:28: stages[0].environment: unknown environment 'prod' "
        "(did you mean 'production'?)"
    ]


def test_compile_deploy_without_environment():
    errors = errors_of(
        "version: 1\nname: p\nstages:\n"
        "  - name: a\n    steps:\n      - deploy: {strategy: record, version: '1'}\n"
    )
    assert errors == [
        "shipline.yml:6:9: stages[0].steps[0]: a deploy step needs its stage to name an "
        "'environment:'"
    ]


def test_compile_step_fields():
    plan = compile_text(
        "version: 1\nname: p\n"
        "environments:\n  prod: {target: {type: command}}\n"
        "stages:\n"
        "  - name: ship\n    environment: prod\n    when: always\n    timeout: 5m\n"
        "    steps:\n"
        "      - deploy: {strategy: record, version: '1.10'}\n"
        "        timeout: 30s\n"
        "      - name: check\n        gate: {uses: pass}\n"
    ).plan
    stage = plan.stages[0]
    deploy, gate = stage.steps
    assert stage.when is When.ALWAYS
    assert stage.timeout == 300.0
    assert deploy.id == "ship/1"
    assert deploy.name == "deploy 1.10 (record)"
    assert deploy.type == "record"
    assert deploy.plugin == "helpers.stepplugin"
    assert deploy.timeout == 30.0
    assert deploy.mark is not None
    assert deploy.mark.line == 11
    assert gate.name == "check"
    assert dict(deploy.options) == {"version": "1.10"}


def test_compile_options_are_frozen():
    plan = compile_text(
        "version: 1\nname: p\nstages:\n"
        "  - {name: a, steps: [{gate: {uses: pass, message: [x, {k: v}]}}]}\n"
    ).plan
    options = plan.stages[0].steps[0].options
    assert isinstance(options, MappingProxyType)
    assert options["message"] == ("x", MappingProxyType({"k": "v"}))
    with pytest.raises(TypeError):
        options["new"] = 1  # type: ignore[index]


def test_compile_interpolates_and_collects_secrets():
    compiled = compile_text(
        "version: 1\nname: p\nsecrets: [HOOK]\n"
        "stages:\n"
        "  - {name: a, steps: [{gate: {uses: pass, message: 'to ${HOOK}'}}]}\n",
        {"HOOK": "https://hooks.invalid/abc123"},
    )
    assert compiled.plan.stages[0].steps[0].options["message"] == "to https://hooks.invalid/abc123"
    assert compiled.masker.mask("x https://hooks.invalid/abc123") == "x ***"


def test_compile_vars_numbers_kept_as_written():
    compiled = compile_text(
        "version: 1\nname: p\nvars: {RELEASE: 1.10, MODE: 0755}\n"
        "stages:\n"
        "  - {name: a, steps: [{gate: {uses: pass, message: '${RELEASE} ${MODE}'}}]}\n"
    )
    assert compiled.plan.stages[0].steps[0].options["message"] == "1.10 0755"
