from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from pipeline.diagnostics import DocPath, Mark
from pipeline.errors import PipelineError
from pipeline.interpolate import MAX_VARIABLE_DEPTH, Interpolation, interpolate
from pipeline.masking import MASK

FILE = "shipline.yml"


class FakeSource:
    """A source map with the marks a test gives. Other paths get their nearest ancestor's."""

    def __init__(self, marks: Mapping[DocPath, Mark] | None = None) -> None:
        self.marks = {(): Mark(FILE, 1, 1), **(marks or {})}

    def value_mark(self, path: DocPath) -> Mark | None:
        while path not in self.marks:
            path = path[:-1]
        return self.marks[path]


def run(
    data: Any,
    *,
    environ: Mapping[str, str] | None = None,
    variables: Mapping[str, Any] | None = None,
    secret_names: Iterable[str] = (),
    source: FakeSource | None = None,
    skip: tuple[DocPath, ...] = (("vars",),),
) -> Interpolation:
    return interpolate(
        data,
        source or FakeSource(),
        environ=environ or {},
        variables=variables or {},
        secret_names=secret_names,
        skip=skip,
    )


def errors_of(data: Any, **options: Any) -> list[str]:
    with pytest.raises(PipelineError) as raised:
        run(data, **options)
    return [diagnostic.format() for diagnostic in raised.value.diagnostics]


def test_interpolate_replaces_reference_from_environment() -> None:
    result = run({"image": "shop:${TAG}"}, environ={"TAG": "1.4.2"})

    assert result.data == {"image": "shop:1.4.2"}


def test_interpolate_default_when_unset() -> None:
    result = run({"x": "${TAG:-latest}"})

    assert result.data == {"x": "latest"}


def test_interpolate_default_when_empty() -> None:
    result = run({"x": "${TAG:-latest}"}, environ={"TAG": ""})

    assert result.data == {"x": "latest"}


def test_interpolate_default_ignored_when_set() -> None:
    result = run({"x": "${TAG:-latest}"}, environ={"TAG": "1.0"})

    assert result.data == {"x": "1.0"}


def test_interpolate_empty_default() -> None:
    result = run({"x": "[${TAG:-}]"})

    assert result.data == {"x": "[]"}


def test_interpolate_default_keeps_dollar_text() -> None:
    result = run({"x": "${PRICE:-$5 or $$6}"})

    assert result.data == {"x": "$5 or $6"}


def test_interpolate_default_escaped_brace() -> None:
    result = run({"x": "${A:-$${B}"})

    assert result.data == {"x": "${B"}


def test_interpolate_set_but_empty_without_default() -> None:
    result = run({"x": "[${TAG}]"}, environ={"TAG": ""})

    assert result.data == {"x": "[]"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$$", "$"),
        ("cost: $$5", "cost: $5"),
        ("$${TAG}", "${TAG}"),
        ("$$$${TAG}", "$${TAG}"),
        ("$HOME/bin", "$HOME/bin"),
        ("echo $1 $", "echo $1 $"),
        ("a $ b", "a $ b"),
        ("$$$", "$$"),
        ("$}{", "$}{"),
    ],
)
def test_interpolate_dollar_rules(text: str, expected: str) -> None:
    result = run({"x": text}, environ={"TAG": "1.0", "HOME": "/root"})

    assert result.data == {"x": expected}


def test_interpolate_several_references_in_one_string() -> None:
    result = run({"x": "${A}-${B:-b}-${A}"}, environ={"A": "a"})

    assert result.data == {"x": "a-b-a"}


def test_interpolate_whole_reference_stays_string() -> None:
    result = run({"port": "${PORT}", "on": "${FLAG}"}, environ={"PORT": "8080", "FLAG": "true"})

    assert result.data == {"port": "8080", "on": "true"}


def test_interpolate_leaves_keys_alone() -> None:
    result = run({"${KEY_NAME}": "${KEY_NAME}"}, environ={"KEY_NAME": "k"})

    assert result.data == {"${KEY_NAME}": "k"}


def test_interpolate_leaves_other_scalars_alone() -> None:
    data = {"n": 3, "f": 1.5, "b": True, "none": None, "list": [1, "${A}", ("${A}",)]}

    result = run(data, environ={"A": "a"})

    assert result.data == {"n": 3, "f": 1.5, "b": True, "none": None, "list": [1, "a", ("a",)]}


def test_interpolate_does_not_modify_input() -> None:
    data = {"stages": [{"name": "${A}"}]}
    before = copy.deepcopy(data)

    run(data, environ={"A": "a"})

    assert data == before


def test_interpolate_environment_overrides_vars() -> None:
    result = run({"x": "${tag}"}, environ={"tag": "from-env"}, variables={"tag": "from-vars"})

    assert result.data == {"x": "from-env"}


def test_interpolate_empty_environment_value_overrides_vars() -> None:
    result = run({"x": "[${tag}]"}, environ={"tag": ""}, variables={"tag": "from-vars"})

    assert result.data == {"x": "[]"}


def test_interpolate_vars_when_environment_unset() -> None:
    result = run({"x": "${tag}"}, variables={"tag": "from-vars"})

    assert result.data == {"x": "from-vars"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), (False, "false"), (3, "3"), (1.5, "1.5"), (None, ""), ("s", "s")],
)
def test_interpolate_vars_scalar_text(value: Any, expected: str) -> None:
    result = run({"x": "${v}"}, variables={"v": value})

    assert result.data == {"x": expected}


def test_interpolate_vars_reference_environment() -> None:
    result = run(
        {"image": "shop:${image_tag}"},
        environ={"CI_COMMIT_SHORT_SHA": "abc1234"},
        variables={"image_tag": "${CI_COMMIT_SHORT_SHA}"},
    )

    assert result.data == {"image": "shop:abc1234"}


def test_interpolate_vars_reference_vars() -> None:
    result = run({"x": "${c}"}, variables={"a": "1", "b": "${a}.2", "c": "${b}.3"})

    assert result.data == {"x": "1.2.3"}


def test_interpolate_skips_vars_subtree() -> None:
    variables = {"tag": "${CI_COMMIT_SHORT_SHA}"}
    data = {"vars": variables, "x": "${tag}"}

    result = run(data, environ={"CI_COMMIT_SHORT_SHA": "abc"}, variables=variables)

    assert result.data == {"vars": {"tag": "${CI_COMMIT_SHORT_SHA}"}, "x": "abc"}


def test_interpolate_skips_given_paths() -> None:
    data = {"a": {"raw": "${NOPE}"}, "b": "${A}"}

    result = run(data, environ={"A": "a"}, skip=(("a", "raw"),))

    assert result.data == {"a": {"raw": "${NOPE}"}, "b": "a"}


def test_interpolate_skipped_subtree_is_copied() -> None:
    data = {"vars": {"list": [1]}}

    result = run(data)

    assert result.data["vars"]["list"] is not data["vars"]["list"]


def test_interpolate_unused_var_may_reference_unset() -> None:
    result = run({"x": "plain"}, variables={"tag": "${CI_COMMIT_SHORT_SHA}"})

    assert result.data == {"x": "plain"}


def test_interpolate_var_overridden_by_environment_not_resolved() -> None:
    result = run({"x": "${tag}"}, environ={"tag": "env"}, variables={"tag": "${UNSET}"})

    assert result.data == {"x": "env"}


def test_interpolate_used_names() -> None:
    result = run(
        {"x": "${a} ${B:-b}", "y": "$${C} $D"},
        environ={"E": "e"},
        variables={"a": "${E}", "unused": "${F}"},
    )

    assert result.used == frozenset({"a", "B", "E"})


def test_interpolate_undefined_message() -> None:
    path: DocPath = ("stages", 0, "steps", 0, "deploy", "version")
    source = FakeSource({path: Mark(FILE, 12, 16)})
    data = {"stages": [{"steps": [{"deploy": {"version": "${IMAGE_TAG}"}}]}]}

    assert errors_of(data, source=source) == [
        "shipline.yml:12:16: stages[0].steps[0].deploy.version: undefined variable "
        "'IMAGE_TAG' (set it in the environment or under 'vars:', or give a default with "
        "${IMAGE_TAG:-value})"
    ]


def test_interpolate_reports_all_undefined() -> None:
    source = FakeSource({("a",): Mark(FILE, 2, 4), ("b", 0): Mark(FILE, 4, 5)})
    data = {"a": "${ONE} ${TWO} ${ONE}", "b": ["${THREE}"], "c": "${ZERO:-ok}"}

    assert errors_of(data, source=source) == [
        "shipline.yml:2:4: a: undefined variable 'ONE' (set it in the environment or under "
        "'vars:', or give a default with ${ONE:-value})",
        "shipline.yml:2:4: a: undefined variable 'TWO' (set it in the environment or under "
        "'vars:', or give a default with ${TWO:-value})",
        "shipline.yml:4:5: b[0]: undefined variable 'THREE' (set it in the environment or "
        "under 'vars:', or give a default with ${THREE:-value})",
    ]


def test_interpolate_undefined_in_var_reported_at_var() -> None:
    source = FakeSource({("vars", "tag"): Mark(FILE, 3, 8), ("x",): Mark(FILE, 5, 4)})
    variables = {"tag": "${CI_COMMIT_SHORT_SHA}"}
    data = {"vars": variables, "x": "${tag}", "y": "${tag}"}

    assert errors_of(data, source=source, variables=variables) == [
        "shipline.yml:3:8: vars.tag: undefined variable 'CI_COMMIT_SHORT_SHA' (set it in "
        "the environment or under 'vars:', or give a default with "
        "${CI_COMMIT_SHORT_SHA:-value})"
    ]


def test_interpolate_cycle_message() -> None:
    source = FakeSource({("vars", "a"): Mark(FILE, 3, 6)})
    variables = {"a": "${b}", "b": "x-${c}", "c": "${a}"}

    assert errors_of({"x": "${a}", "y": "${c}"}, source=source, variables=variables) == [
        "shipline.yml:3:6: vars.a: variables reference each other in a cycle: a -> b -> c -> a"
    ]


def test_interpolate_self_reference_message() -> None:
    source = FakeSource({("vars", "a"): Mark(FILE, 3, 6)})

    assert errors_of({"x": "${a}"}, source=source, variables={"a": "pre-${a}"}) == [
        "shipline.yml:3:6: vars.a: variable 'a' references itself"
    ]


def test_interpolate_unused_cycle_is_not_an_error() -> None:
    result = run({"x": "ok"}, variables={"a": "${b}", "b": "${a}"})

    assert result.data == {"x": "ok"}


def test_interpolate_var_chain_too_deep() -> None:
    count = MAX_VARIABLE_DEPTH + 1
    variables = {f"v{index}": f"${{v{index + 1}}}" for index in range(count)}
    variables[f"v{count}"] = "end"

    assert errors_of({"x": "${v0}"}, variables=variables) == [
        f"shipline.yml:1:1: vars.v{MAX_VARIABLE_DEPTH}: variable 'v{MAX_VARIABLE_DEPTH}' is "
        f"nested too deeply: more than {MAX_VARIABLE_DEPTH} 'vars:' entries reference one "
        "another in a chain"
    ]


def test_interpolate_var_chain_at_limit() -> None:
    variables = {f"v{index}": f"${{v{index + 1}}}" for index in range(MAX_VARIABLE_DEPTH - 1)}
    variables[f"v{MAX_VARIABLE_DEPTH - 1}"] = "end"

    result = run({"x": "${v0}"}, variables=variables)

    assert result.data == {"x": "end"}


@pytest.mark.parametrize(("value", "kind"), [({"a": 1}, "a mapping"), ([1, 2], "a list")])
def test_interpolate_var_not_scalar(value: Any, kind: str) -> None:
    source = FakeSource({("vars", "v"): Mark(FILE, 2, 6)})

    assert errors_of({"x": "${v}"}, source=source, variables={"v": value}) == [
        f"shipline.yml:2:6: vars.v: variable 'v' is {kind}, but only a string, number, "
        "boolean or null can be interpolated"
    ]


SYNTAX_HINT = (
    "(write ${NAME} or ${NAME:-default} with a NAME of letters, digits and '_' that does "
    "not start with a digit, or $$ for a literal '$')"
)


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("${}", "'${}'"),
        ("x ${bad-name} y", "'${bad-name}'"),
        ("${1ABC}", "'${1ABC}'"),
        ("${NAME-x}", "'${NAME-x}'"),
        ("${NAME:=x}", "'${NAME:=x}'"),
        ("${ NAME }", "'${ NAME }'"),
    ],
)
def test_interpolate_invalid_reference(text: str, reference: str) -> None:
    assert errors_of({"x": text}, environ={"NAME": "n"}) == [
        f"shipline.yml:1:1: x: invalid variable reference {reference} {SYNTAX_HINT}"
    ]


def test_interpolate_unclosed_reference() -> None:
    assert errors_of({"x": "image:${TAG"}) == [
        "shipline.yml:1:1: x: unclosed variable reference '${TAG': missing '}' "
        "(close it with '}', or write $${ for a literal '${')"
    ]


def test_interpolate_long_reference_is_cut() -> None:
    text = "${" + "A" * 60

    assert errors_of({"x": text}) == [
        f"shipline.yml:1:1: x: unclosed variable reference '${{{'A' * 38}...': missing '}}' "
        "(close it with '}', or write $${ for a literal '${')"
    ]


def test_interpolate_nested_default() -> None:
    assert errors_of({"x": "${A:-${B}}"}) == [
        "shipline.yml:1:1: x: invalid variable reference '${A:-${B}': a default cannot "
        "contain '${' (a default is plain text, and $${ writes a literal '${')"
    ]


def test_interpolate_reports_syntax_and_undefined_together() -> None:
    assert errors_of({"x": "${bad-name} ${UNSET} ${OK:-1}"}) == [
        f"shipline.yml:1:1: x: invalid variable reference '${{bad-name}}' {SYNTAX_HINT}",
        "shipline.yml:1:1: x: undefined variable 'UNSET' (set it in the environment or "
        "under 'vars:', or give a default with ${UNSET:-value})",
    ]


def test_interpolate_syntax_error_in_var() -> None:
    source = FakeSource({("vars", "v"): Mark(FILE, 2, 6)})

    assert errors_of({"x": "${v}", "y": "${v}"}, source=source, variables={"v": "${}"}) == [
        f"shipline.yml:2:6: vars.v: invalid variable reference '${{}}' {SYNTAX_HINT}"
    ]


def test_interpolate_listed_secret_masked() -> None:
    result = run(
        {"url": "${SLACK_WEBHOOK_URL}"},
        environ={"SLACK_WEBHOOK_URL": "https://hooks.example/T0/B0/xyz"},
        secret_names=["SLACK_WEBHOOK_URL"],
    )

    assert result.masker.mask(result.data["url"]) == MASK


def test_interpolate_sensitive_name_masked() -> None:
    result = run({"auth": "${API_TOKEN}"}, environ={"API_TOKEN": "tok-123456"})

    assert result.masker.secrets == frozenset({"tok-123456"})


def test_interpolate_other_names_not_masked() -> None:
    result = run({"image": "${IMAGE_TAG}"}, environ={"IMAGE_TAG": "1.4.2"})

    assert result.masker.secrets == frozenset()


def test_interpolate_secret_inside_larger_string() -> None:
    result = run({"header": "Bearer ${API_TOKEN}"}, environ={"API_TOKEN": "tok-123456"})

    assert result.data == {"header": "Bearer tok-123456"}
    assert result.masker.mask(result.data["header"]) == f"Bearer {MASK}"


def test_interpolate_secret_through_var() -> None:
    result = run(
        {"header": "${auth}"},
        environ={"API_TOKEN": "tok-123456"},
        variables={"auth": "Bearer ${API_TOKEN}"},
    )

    assert result.masker.mask(result.data["header"]) == f"Bearer {MASK}"


def test_interpolate_sensitive_var_masked() -> None:
    result = run({"x": "${db_password}"}, variables={"db_password": "pw-from-file"})

    assert result.masker.secrets == frozenset({"pw-from-file"})


def test_interpolate_secret_default_masked() -> None:
    result = run({"x": "${API_TOKEN:-dummy-token}"})

    assert result.masker.secrets == frozenset({"dummy-token"})


def test_interpolate_empty_secret_not_registered() -> None:
    result = run({"x": "[${API_TOKEN}]"}, environ={"API_TOKEN": ""})

    assert result.masker.secrets == frozenset()


def test_interpolate_listed_secret_unset_and_unused() -> None:
    result = run({"x": "plain"}, secret_names=["SLACK_WEBHOOK_URL"])

    assert result.data == {"x": "plain"}


def test_interpolate_listed_secret_unset_and_used() -> None:
    assert errors_of({"url": "${SLACK_WEBHOOK_URL}"}, secret_names=["SLACK_WEBHOOK_URL"]) == [
        "shipline.yml:1:1: url: undefined variable 'SLACK_WEBHOOK_URL' (set it in the "
        "environment or under 'vars:', or give a default with ${SLACK_WEBHOOK_URL:-value})"
    ]


def test_interpolate_listed_secret_registered_unused() -> None:
    result = run(
        {"x": "plain"},
        environ={"SLACK_WEBHOOK_URL": "https://hooks.example/xyz"},
        secret_names=["SLACK_WEBHOOK_URL"],
    )

    assert result.masker.secrets == frozenset({"https://hooks.example/xyz"})


def test_interpolate_unused_sensitive_environment_not_registered() -> None:
    result = run({"x": "plain"}, environ={"GITHUB_TOKEN": "ghp-unused"})

    assert result.masker.secrets == frozenset()


def test_interpolate_errors_never_contain_secret() -> None:
    secret = "tok-123456"

    with pytest.raises(PipelineError) as raised:
        run(
            {"x": "${API_TOKEN} ${bad-name}", "y": "${API_TOKEN}${UNSET}"},
            environ={"API_TOKEN": secret},
        )

    assert secret not in str(raised.value)


def test_interpolate_new_masker_per_call() -> None:
    first = run({"x": "${API_TOKEN}"}, environ={"API_TOKEN": "tok-123456"})
    second = run({"x": "${API_TOKEN}"}, environ={"API_TOKEN": "tok-abcdef"})

    assert first.masker.secrets == frozenset({"tok-123456"})
    assert second.masker.secrets == frozenset({"tok-abcdef"})


def test_interpolate_multiline_string() -> None:
    result = run({"script": "echo ${A}\necho $${B}\n"}, environ={"A": "a"})

    assert result.data == {"script": "echo a\necho ${B}\n"}
