"""Tests of the YAML loader: values, source marks, rejected content and file-level errors.

Every test runs once with the libyaml parser (when PyYAML has it) and once with PyYAML's
pure-Python parser, because the loader picks whichever is installed. Where the two
parsers word a syntax error differently, the expected text is given for each.
"""

from __future__ import annotations

import math
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import loader
from pipeline.diagnostics import Mark
from pipeline.errors import PipelineError, UsageError
from pipeline.exitcodes import ExitCode
from pipeline.loader import Document, find_default_file, load_file, load_text

DATA = Path(__file__).parent / "data" / "loader"
PARSERS = ["libyaml", "python"] if yaml.__with_libyaml__ else ["python"]

pytestmark = pytest.mark.usefixtures("parser")


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Select the event parser for one run of a test; returns "libyaml" or "python"."""
    monkeypatch.setattr(loader, "_USE_LIBYAML", request.param == "libyaml")
    return str(request.param)


def load(text: str) -> Document:
    return load_text(textwrap.dedent(text), "shipline.yml")


def problems(text: str) -> list[str]:
    """Load dedented text that must fail and return each formatted diagnostic."""
    with pytest.raises(PipelineError) as raised:
        load(text)
    return [diagnostic.format() for diagnostic in raised.value.diagnostics]


def usage_error(text: str) -> str:
    with pytest.raises(UsageError) as raised:
        load(text)
    return str(raised.value)


def mark(line: int, column: int) -> Mark:
    return Mark("shipline.yml", line, column)


# --- the happy path ------------------------------------------------------------------


@pytest.fixture
def anchors_document(monkeypatch: pytest.MonkeyPatch) -> Document:
    monkeypatch.chdir(DATA)
    return load_file(Path("anchors.yml"))


def test_load_file_anchors_data(anchors_document: Document) -> None:
    deploy_defaults = {
        "strategy": "canary",
        "timeout": "10m",
        "steps": [{"set_weight": 20}, {"pause": "30s"}],
    }
    error_rate = {
        "provider": "prometheus",
        "query": "rate(errors[5m])",
        "success": "result < 0.01",
    }
    assert anchors_document.data == {
        "version": 1.1,
        "name": "shop",
        "vars": {
            "mode": 755,
            "switches": ["on", "off", "yes", "no"],
            "released": "2026-01-01",
            "quoted": "1.10",
        },
        "analyses": {"error-rate": error_rate},
        "defaults": deploy_defaults,
        "stages": [
            {
                "name": "staging",
                "steps": [{"deploy": {**deploy_defaults, "version": "1.4.2"}}],
            },
            {
                "name": "production",
                "needs": ["staging"],
                "steps": [
                    {"deploy": {**deploy_defaults, "version": "1.4.2", "strategy": "blue-green"}},
                    {"analysis": error_rate},
                ],
            },
        ],
    }


def test_load_file_anchors_merge_key_order(anchors_document: Document) -> None:
    stages = anchors_document.data["stages"]
    assert list(stages[0]["steps"][0]["deploy"]) == ["strategy", "timeout", "steps", "version"]
    assert list(stages[1]["steps"][0]["deploy"]) == ["version", "timeout", "steps", "strategy"]


def test_load_file_anchors_paths_and_names(anchors_document: Document) -> None:
    assert anchors_document.path == Path("anchors.yml")
    assert anchors_document.display_name == "anchors.yml"


def test_load_file_aliases_are_independent_copies(anchors_document: Document) -> None:
    data = anchors_document.data
    data["stages"][0]["steps"][0]["deploy"]["steps"].append({"set_weight": 100})
    data["stages"][1]["steps"][1]["analysis"]["provider"] = "datadog"

    assert data["defaults"]["steps"] == [{"set_weight": 20}, {"pause": "30s"}]
    assert data["stages"][1]["steps"][0]["deploy"]["steps"] == [
        {"set_weight": 20},
        {"pause": "30s"},
    ]
    assert data["analyses"]["error-rate"]["provider"] == "prometheus"


def test_source_map_nested_value_and_key(anchors_document: Document) -> None:
    source = anchors_document.source
    path = ("stages", 1, "steps", 0, "deploy", "strategy")
    assert source.value_mark(path) == Mark("anchors.yml", 32, 21)
    assert source.key_mark(path) == Mark("anchors.yml", 32, 11)


def test_source_map_merged_key_points_at_anchor(anchors_document: Document) -> None:
    source = anchors_document.source
    path = ("stages", 0, "steps", 0, "deploy", "timeout")
    assert source.value_mark(path) == Mark("anchors.yml", 16, 12)
    assert source.key_mark(path) == Mark("anchors.yml", 16, 3)


def test_source_map_alias_and_values_inside_it(anchors_document: Document) -> None:
    source = anchors_document.source
    alias_path = ("stages", 1, "steps", 1, "analysis")
    assert source.value_mark(alias_path) == Mark("anchors.yml", 33, 19)
    assert source.key_mark(alias_path) == Mark("anchors.yml", 33, 9)
    assert source.value_mark((*alias_path, "provider")) == Mark("anchors.yml", 11, 15)
    assert source.key_mark((*alias_path, "provider")) == Mark("anchors.yml", 11, 5)


def test_source_map_unknown_path_uses_nearest_ancestor(anchors_document: Document) -> None:
    source = anchors_document.source
    deploy = ("stages", 1, "steps", 0, "deploy")
    assert source.value_mark((*deploy, "missing", "deeper")) == Mark("anchors.yml", 30, 11)
    assert source.key_mark((*deploy, "missing")) == Mark("anchors.yml", 30, 11)
    assert source.value_mark(("stages", 9)) == Mark("anchors.yml", 21, 3)
    assert source.value_mark(("name", "x")) == Mark("anchors.yml", 3, 7)
    assert source.value_mark(("stages", "name")) == Mark("anchors.yml", 21, 3)


def test_source_map_key_mark_falls_back_to_value(anchors_document: Document) -> None:
    source = anchors_document.source
    assert source.key_mark(()) == Mark("anchors.yml", 2, 1)
    assert source.key_mark(("stages", 1)) == Mark("anchors.yml", 26, 5)
    assert source.key_mark(("vars", "switches", 2)) == Mark("anchors.yml", 6, 23)


def test_source_map_plain_text(anchors_document: Document) -> None:
    source = anchors_document.source
    assert source.plain_text(("version",)) == "1.10"
    assert source.plain_text(("vars", "mode")) == "0755"
    assert source.plain_text(("stages", 0, "steps", 0, "deploy", "steps", 0, "set_weight")) == "20"
    assert source.plain_text(("vars", "quoted")) is None
    assert source.plain_text(("vars", "released")) is None
    assert source.plain_text(("vars",)) is None
    assert source.plain_text(("vars", "missing")) is None


def test_source_map_line_text(anchors_document: Document) -> None:
    source = anchors_document.source
    assert source.line_text(2) == "version: 1.10"
    assert source.line_text(33) == "      - analysis: *error-rate"
    assert source.line_text(0) == ""
    assert source.line_text(35) == ""


def test_load_text_default_path_is_display_name() -> None:
    document = load_text("version: 1\n", "ci/shipline.yml")
    assert document.path == Path("ci/shipline.yml")
    assert document.display_name == "ci/shipline.yml"
    assert document.source.value_mark(("version",)) == Mark("ci/shipline.yml", 1, 10)


def test_load_text_keeps_given_path() -> None:
    document = load_text("version: 1\n", "shipline.yml", Path("/srv/ci/shipline.yml"))
    assert document.path == Path("/srv/ci/shipline.yml")
    assert document.display_name == "shipline.yml"


# --- scalars -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("n", "n"),
        ("tRUE", "tRUE"),
        ("nULL", "nULL"),
        ("2026-01-01", "2026-01-01"),
        ("12:30:00", "12:30:00"),
        ("0", 0),
        ("42", 42),
        ("-17", -17),
        ("+5", 5),
        ("0755", 755),
        ("0o17", 15),
        ("0x1F", 31),
        ("0xff", 255),
        ("0b101", "0b101"),
        ("1_000", "1_000"),
        ("0o8", "0o8"),
        ("1.10", 1.1),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("6.02E+23", 6.02e23),
        ("1.5e-3", 0.0015),
        (".inf", math.inf),
        (".Inf", math.inf),
        ("+.INF", math.inf),
        ("-.inf", -math.inf),
        ("1.2.3", "1.2.3"),
        ("30s", "30s"),
        ("+", "+"),
        (".", "."),
        ("1e", "1e"),
        ("inf", "inf"),
    ],
)
def test_load_text_plain_scalar(text: str, expected: Any) -> None:
    value = load(f"value: {text}\n").data["value"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_load_text_plain_nan(text: str) -> None:
    value = load(f"value: {text}\n").data["value"]
    assert isinstance(value, float)
    assert math.isnan(value)


@pytest.mark.parametrize("text", ["'1.10'", '"true"', "'null'", '""', "'0755'", "|\n  on\n"])
def test_load_text_quoted_scalar_is_string(text: str) -> None:
    value = load(f"value: {text}\n").data["value"]
    assert isinstance(value, str)


def test_load_text_plain_text_only_for_numbers() -> None:
    document = load(
        """\
        a: 0x1F
        b: '0x1F'
        c: true
        d: 1e3
        e: !!float 2
        f: !!int "7"
        """
    )
    assert document.source.plain_text(("a",)) == "0x1F"
    assert document.source.plain_text(("b",)) is None
    assert document.source.plain_text(("c",)) is None
    assert document.source.plain_text(("d",)) == "1e3"
    assert document.source.plain_text(("e",)) == "2"
    assert document.source.plain_text(("f",)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!!str 5", "5"),
        ("!!str true", "true"),
        ("!!str", ""),
        ("! 12", "12"),
        ("!<tag:yaml.org,2002:str> 5", "5"),
        ("!!int 0755", 755),
        ("!!int '42'", 42),
        ("!!int 0x10", 16),
        ("!!float 1", 1.0),
        ("!!float '1.5'", 1.5),
        ("!!bool true", True),
        ("!!bool 'FALSE'", False),
        ("!!null ''", None),
        ("!!null ~", None),
        ("!!map {a: 1}", {"a": 1}),
        ("!!seq [1]", [1]),
        ("! [1]", [1]),
    ],
)
def test_load_text_standard_tag(text: str, expected: Any) -> None:
    value = load(f"value: {text}\n").data["value"]
    assert value == expected
    assert type(value) is type(expected)


def test_load_text_python_tag_rejected() -> None:
    assert problems(
        """\
        version: 1
        name: shop
        hooks: !!python/object/apply:os.system ["echo hi"]
        """
    ) == [
        "shipline.yml:3:8: tag '!!python/object/apply:os.system' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
    ]


def test_load_text_other_tags_rejected() -> None:
    assert problems(
        """\
        a: !!python/name:os.system
        b: !foo bar
        c: !!binary aGVsbG8=
        d: !!set {x, y}
        e: !!timestamp 2001-12-14
        f: !!omap [a: 1]
        g: !<tag:example.com,2026:thing> x
        !!python/str key: 1
        """
    ) == [
        "shipline.yml:1:4: tag '!!python/name:os.system' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:2:4: tag '!foo' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:3:4: tag '!!binary' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:4:4: tag '!!set' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:5:4: tag '!!timestamp' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:6:4: tag '!!omap' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:7:4: tag 'tag:example.com,2026:thing' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        "shipline.yml:8:1: tag '!!python/str' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
    ]


def test_load_text_tag_with_invalid_value() -> None:
    huge_hex = "0x" + "f" * 300
    assert problems(
        f"""\
        a: !!int 1.5
        b: !!float abc
        c: !!bool yes
        d: !!null none
        e: !!float {huge_hex}
        """
    ) == [
        "shipline.yml:1:4: '1.5' is not a valid !!int value (fix the value or remove the tag)",
        "shipline.yml:2:4: 'abc' is not a valid !!float value (fix the value or remove the tag)",
        "shipline.yml:3:4: 'yes' is not a valid !!bool value (fix the value or remove the tag)",
        "shipline.yml:4:4: 'none' is not a valid !!null value (fix the value or remove the tag)",
        "shipline.yml:5:4: '0xfffffffffffffffffffffffffffffffffff...' is not a valid !!float "
        "value (fix the value or remove the tag)",
    ]


def test_load_text_tag_on_wrong_kind_of_node() -> None:
    assert problems(
        """\
        a: !!map text
        b: !!seq {x: 1}
        c: !!str [x]
        d: !!int {x: 1}
        """
    ) == [
        "shipline.yml:1:4: tag '!!map' does not fit a scalar (remove the tag)",
        "shipline.yml:2:4: tag '!!seq' does not fit a mapping (remove the tag)",
        "shipline.yml:3:4: tag '!!str' does not fit a list (remove the tag)",
        "shipline.yml:4:4: tag '!!int' does not fit a mapping (remove the tag)",
    ]


@pytest.mark.skipif(
    not hasattr(sys, "get_int_max_str_digits"),
    reason="Python before 3.10.7 converts integers of any length",
)
def test_load_text_integer_with_too_many_digits() -> None:
    digits = "9" * 5000
    assert problems(f"value: {digits}\n") == [
        "shipline.yml:1:8: the integer '9999999999999999999999999999999999999...' has too many "
        "digits (quote it to keep it as a string)",
    ]


# --- mapping keys --------------------------------------------------------------------


def test_load_text_duplicate_key() -> None:
    assert problems(
        """\
        version: 1
        name: shop
        stages:
          - name: build
            steps: []
            name: again
        name: other
        """
    ) == [
        "shipline.yml:6:5: duplicate key 'name' (first defined on line 4; remove one of them)",
        "shipline.yml:7:1: duplicate key 'name' (first defined on line 2; remove one of them)",
    ]


def test_load_text_duplicate_key_quoted_and_plain() -> None:
    assert problems("'1': a\n1: b\n") == [
        "shipline.yml:2:1: duplicate key '1' (first defined on line 1; remove one of them)",
    ]


def test_load_text_scalar_keys_become_text() -> None:
    data = load(
        """\
        1: integer
        1.10: float
        null: null word
        ~: tilde
        true: boolean
        'quoted': quoted
        !!str 7: tagged
        ?
        : empty
        """
    ).data
    assert data == {
        "1": "integer",
        "1.10": "float",
        "null": "null word",
        "~": "tilde",
        "true": "boolean",
        "quoted": "quoted",
        "7": "tagged",
        "": "empty",
    }


def test_load_text_complex_keys_rejected() -> None:
    assert problems(
        """\
        [a, b]: list
        {c: 1}: mapping
        ? - d
        : explicit
        ok: 1
        """
    ) == [
        "shipline.yml:1:1: a mapping key must be a single value, not a list "
        "(write the key as a plain string)",
        "shipline.yml:2:1: a mapping key must be a single value, not a mapping "
        "(write the key as a plain string)",
        "shipline.yml:3:3: a mapping key must be a single value, not a list "
        "(write the key as a plain string)",
    ]


def test_load_text_alias_as_key() -> None:
    data = load("label: &key name\n*key : shop\n").data
    assert data == {"label": "name", "name": "shop"}


def test_load_text_alias_to_collection_as_key_rejected() -> None:
    assert problems("base: &base {a: 1}\n*base : shop\n") == [
        "shipline.yml:2:1: alias '*base' is used as a mapping key but its anchor is a mapping "
        "(a mapping key must be a single value, such as a name)",
    ]


# --- anchors, aliases and merge keys -------------------------------------------------


def test_load_text_alias_to_scalar_keeps_plain_text() -> None:
    document = load("version: &v 1.10\nagain: *v\n")
    assert document.data == {"version": 1.1, "again": 1.1}
    assert document.source.plain_text(("again",)) == "1.10"
    assert document.source.value_mark(("again",)) == mark(2, 8)


def test_load_text_anchor_redefined_uses_latest() -> None:
    data = load("a: &x 1\nb: &x 2\nc: *x\n").data
    assert data == {"a": 1, "b": 2, "c": 2}


def test_load_text_undefined_alias() -> None:
    assert problems("a: *missing\n*other : 1\n") == [
        "shipline.yml:1:4: alias '*missing' refers to no anchor defined before it "
        "(add '&missing' to a node above this line)",
        "shipline.yml:2:1: alias '*other' refers to no anchor defined before it "
        "(add '&other' to a node above this line)",
    ]


def test_load_text_alias_inside_own_anchor() -> None:
    assert problems("loop: &loop\n  again: *loop\n") == [
        "shipline.yml:2:10: alias '*loop' is used inside the node that defines '&loop' "
        "(a node cannot contain itself)",
    ]


def test_load_text_merge_key_precedence() -> None:
    data = load(
        """\
        first: &first {a: 1, b: 1}
        second: &second {b: 2, c: 2}
        merged:
          c: 3
          <<: [*first, *second]
          d: 3
        """
    ).data
    assert data["merged"] == {"c": 3, "a": 1, "b": 1, "d": 3}
    assert list(data["merged"]) == ["c", "a", "b", "d"]


def test_load_text_merge_key_inline_mapping() -> None:
    data = load("job:\n  <<: {image: alpine, retries: 2}\n  retries: 5\n").data
    assert data == {"job": {"image": "alpine", "retries": 5}}


def test_load_text_merged_values_are_copies() -> None:
    data = load(
        """\
        base: &base {tags: [a]}
        job:
          <<: *base
        """
    ).data
    data["job"]["tags"].append("b")
    assert data["base"]["tags"] == ["a"]


def test_load_text_quoted_merge_key_is_plain_key() -> None:
    data = load("job:\n  '<<': {a: 1}\n").data
    assert data == {"job": {"<<": {"a": 1}}}


def test_load_text_merge_key_invalid_value() -> None:
    assert problems(
        """\
        a:
          <<: 5
        b:
          <<: [{x: 1}, 2]
        """
    ) == [
        "shipline.yml:2:7: the value of a merge key '<<' must be a mapping or a list of "
        "mappings (for example '<<: *defaults' or '<<: [*defaults, *overrides]')",
        "shipline.yml:4:7: the value of a merge key '<<' must be a mapping or a list of "
        "mappings (for example '<<: *defaults' or '<<: [*defaults, *overrides]')",
    ]


def test_load_text_merge_key_twice() -> None:
    assert problems(
        """\
        x: &x {a: 1}
        y: &y {b: 1}
        job:
          <<: *x
          <<: *y
        """
    ) == [
        "shipline.yml:5:3: duplicate key '<<' (first defined on line 4; remove one of them)",
    ]


def billion_laughs() -> str:
    """Return 9 levels of anchors, each a list of 10 aliases to the level below."""
    lines = ['a: &a "lol"']
    previous = "a"
    for name in "bcdefghij":
        aliases = ", ".join([f"*{previous}"] * 10)
        lines.append(f"{name}: &{name} [{aliases}]")
        previous = name
    return "\n".join(lines) + "\n"


def test_load_text_billion_laughs_rejected() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(PipelineError) as raised:
            load_text(billion_laughs(), "shipline.yml")
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert str(raised.value) == (
        "shipline.yml:7:20: alias '*f' expands the document beyond 500000 nodes "
        '(a "billion laughs" document?); reduce the use of aliases'
    )
    assert peak_bytes < 2_000_000


def test_load_text_node_limit_without_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_NODES", 6)
    assert problems("a: 1\nb: 2\nc: 3\n") == [
        "shipline.yml:3:4: the document has more than 6 nodes, counting each alias at its "
        "expanded size (split the pipeline or shorten repeated parts)",
    ]


def test_load_text_node_limit_at_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_NODES", 10)
    assert problems("a: &a [1, 2, 3]\nb: *a\n") == [
        "shipline.yml:2:4: alias '*a' expands the document beyond 10 nodes "
        '(a "billion laughs" document?); reduce the use of aliases',
    ]


def test_load_text_node_limit_exactly_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_NODES", 10)
    assert load("a: &a [1, 2]\nb: *a\n").data == {"a": [1, 2], "b": [1, 2]}


# --- nesting depth -------------------------------------------------------------------


def test_load_text_depth_limit_reached_exactly() -> None:
    inner = "[" * (loader.MAX_DEPTH - 1) + "]" * (loader.MAX_DEPTH - 1)
    node: Any = load(f"x: {inner}\n").data["x"]
    for _ in range(loader.MAX_DEPTH - 2):
        node = node[0]
    assert node == []


def test_load_text_flow_nesting_too_deep() -> None:
    text = "x: " + "[" * 150 + "]" * 150 + "\n"
    assert problems(text) == [
        "shipline.yml:1:103: the document is nested deeper than 100 levels (flatten the structure)",
    ]


def test_load_text_block_nesting_too_deep() -> None:
    text = "x:\n" + "- " * 150 + "leaf\n"
    assert problems(text) == [
        "shipline.yml:2:199: the document is nested deeper than 100 levels (flatten the structure)",
    ]


def test_load_text_five_thousand_levels(parser: str) -> None:
    text = "x: " + "[" * 5000 + "]" * 5000 + "\n"
    # libyaml stops at its own limit of 1,000 levels while scanning ahead on one line,
    # before it passes level 101 to the loader.
    column = 1003 if parser == "libyaml" else 103
    assert problems(text) == [
        f"shipline.yml:1:{column}: the document is nested deeper than 100 levels "
        "(flatten the structure)",
    ]


def test_load_text_alias_nesting_too_deep() -> None:
    anchored = "[" * 60 + "]" * 60
    using = "[" * 45 + "*deep" + "]" * 45
    assert problems(f"a: &deep {anchored}\nb: {using}\n") == [
        "shipline.yml:2:49: alias '*deep' nests the document deeper than 100 levels "
        "(flatten the structure)",
    ]


# --- syntax errors -------------------------------------------------------------------


SYNTAX_ERRORS = {
    "bad-indentation": (
        "version: 1\nname: shop\n stages: []\n",
        {
            "libyaml": "shipline.yml:3:8: mapping values are not allowed in this context",
            "python": "shipline.yml:3:8: mapping values are not allowed here",
        },
        "   stages: []\n         ^",
    ),
    "unclosed-flow-sequence": (
        "version: 1\nstages: [a, b\n",
        {
            "libyaml": "shipline.yml:3:1: did not find expected ',' or ']' "
            "(while parsing a flow sequence on line 2)",
            "python": "shipline.yml:3:1: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence on line 2)",
        },
        "  stages: [a, b\n          ^",
    ),
    "bracket-open-at-end-of-file": (
        "version: 1\nstages: [\n",
        {
            "libyaml": "shipline.yml:3:1: did not find expected node content "
            "(the '[' on line 2 is never closed: add ']' where it ends)",
            "python": "shipline.yml:3:1: expected the node content, but found '<stream end>' "
            "(the '[' on line 2 is never closed: add ']' where it ends)",
        },
        "  stages: [\n          ^",
    ),
    "unclosed-quote": (
        "version: 1\nname: 'shop\n",
        {
            "libyaml": "shipline.yml:3:1: found unexpected end of stream "
            "(while scanning a quoted scalar on line 2)",
            "python": "shipline.yml:3:1: found unexpected end of stream "
            "(while scanning a quoted scalar on line 2)",
        },
        "  name: 'shop\n        ^",
    ),
    "list-item-in-mapping": (
        "version: 1\nname: shop\n- stages\n",
        {
            "libyaml": "shipline.yml:3:1: did not find expected key "
            "(while parsing a block mapping on line 1)",
            "python": "shipline.yml:3:1: expected <block end>, but found '-' "
            "(while parsing a block mapping on line 1)",
        },
        "  - stages\n  ^",
    ),
    "tab-indentation": (
        "version: 1\nstages:\n\t- name: a\n",
        {
            "libyaml": "shipline.yml:3:1: found character that cannot start any token "
            "(while scanning for the next token; indent with spaces, because YAML does not "
            "allow tabs for indentation)",
            "python": "shipline.yml:3:1: found character '\\t' that cannot start any token "
            "(while scanning for the next token; indent with spaces, because YAML does not "
            "allow tabs for indentation)",
        },
        "   - name: a\n  ^",
    ),
}


@pytest.mark.parametrize("case", list(SYNTAX_ERRORS))
def test_load_text_syntax_error(case: str, parser: str) -> None:
    text, messages, excerpt = SYNTAX_ERRORS[case]
    with pytest.raises(PipelineError) as raised:
        load_text(text, "shipline.yml")
    assert str(raised.value) == f"{messages[parser]}\n{excerpt}"
    assert raised.value.exit_code == ExitCode.INVALID


def test_load_text_syntax_error_keeps_earlier_problems(parser: str) -> None:
    syntax_error = {
        "libyaml": "did not find expected ',' or ']'",
        "python": "expected ',' or ']', but got '<stream end>'",
    }[parser]
    assert problems("a: !foo 1\nb: [x\n") == [
        "shipline.yml:1:4: tag '!foo' is not allowed "
        "(shipline reads plain YAML data only; remove the tag)",
        f"shipline.yml:3:1: {syntax_error} (while parsing a flow sequence on line 2)\n"
        "  b: [x\n"
        "     ^",
    ]


def test_load_text_control_character() -> None:
    with pytest.raises(PipelineError) as raised:
        load_text("version: 1\nname: a\x07b\n", "shipline.yml")
    assert str(raised.value) == (
        "shipline.yml:2:8: character U+0007 is not allowed in YAML "
        '(remove it, or write it as "\\u0007" inside a double-quoted string)\n'
        "  name: a\ufffdb\n"
        "         ^"
    )


# --- file-level problems -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "   \n", "# only a comment\n# and another\n", "---\n", "--- # empty\n...\n"],
)
def test_load_text_empty(text: str) -> None:
    assert usage_error(text) == (
        "shipline.yml: the file is empty; a pipeline needs at least 'version', 'name' and 'stages'"
    )


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("- version: 1\n", "a list"),
        ("just text\n", "a string"),
        ("'1.10'\n", "a string"),
        ("42\n", "a number"),
        ("1.5\n", "a number"),
        ("true\n", "a boolean"),
        ("null\n", "null"),
        ("~\n", "null"),
    ],
)
def test_load_text_top_level_not_mapping(text: str, described: str) -> None:
    assert usage_error(text) == (
        "shipline.yml: the top level must be a mapping of keys such as "
        f"'version', 'name' and 'stages', not {described}"
    )


def test_load_text_second_document() -> None:
    assert usage_error("version: 1\n---\nversion: 2\n") == (
        "shipline.yml: the file contains more than one YAML document "
        "(the second starts on line 2); keep one pipeline per file"
    )


def test_load_text_leading_document_marker() -> None:
    assert load("---\nversion: 1\n...\n").data == {"version": 1}


def test_load_text_byte_order_mark() -> None:
    document = load_text("\ufeffversion: 1\n", "shipline.yml")
    assert document.data == {"version": 1}
    assert document.source.key_mark(("version",)) == mark(1, 1)
    assert document.source.line_text(1) == "version: 1"


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_file_missing(in_tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        load_file(Path("shipline.yml"))
    assert str(raised.value) == "shipline.yml: file not found"
    assert raised.value.exit_code == ExitCode.INVALID


def test_load_file_directory(in_tmp_path: Path) -> None:
    (in_tmp_path / "ci").mkdir()
    with pytest.raises(UsageError) as raised:
        load_file(Path("ci"))
    assert str(raised.value) == "ci: is a directory, not a file; pass the pipeline file itself"


def test_load_file_unreadable(in_tmp_path: Path) -> None:
    (in_tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        load_file(Path("notes.txt/shipline.yml"))
    assert str(raised.value) == "notes.txt/shipline.yml: cannot read the file: Not a directory"


def test_load_file_nul_byte(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes(b"version: 1\x00\n")
    with pytest.raises(UsageError) as raised:
        load_file(Path("shipline.yml"))
    assert str(raised.value) == (
        "shipline.yml: binary data (a NUL byte at byte offset 10); "
        "the pipeline file must be UTF-8 text"
    )


def test_load_file_invalid_utf8(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(UsageError) as raised:
        load_file(Path("shipline.yml"))
    assert str(raised.value) == (
        "shipline.yml: invalid UTF-8 (byte 0xe9 at byte offset 20); "
        "the pipeline file must be UTF-8 text"
    )


def test_load_file_utf16(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes("version: 1\n".encode("utf-16"))
    with pytest.raises(UsageError) as raised:
        load_file(Path("shipline.yml"))
    assert str(raised.value) == (
        "shipline.yml: the file is UTF-16 or UTF-32 encoded (it starts with that byte order "
        "mark); save it as UTF-8 text"
    )


def test_load_file_utf8_byte_order_mark(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes(b"\xef\xbb\xbfversion: 1\nname: caf\xc3\xa9\n")
    document = load_file(Path("shipline.yml"))
    assert document.data == {"version": 1, "name": "caf\u00e9"}
    assert document.source.value_mark(("version",)) == mark(1, 10)


def test_load_file_crlf_line_endings(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes(
        b"version: 1\r\nname: shop\r\nstages:\r\n  - name: build\r\n    steps: []\r\n"
    )
    document = load_file(Path("shipline.yml"))
    assert document.data == {
        "version": 1,
        "name": "shop",
        "stages": [{"name": "build", "steps": []}],
    }
    assert document.source.value_mark(("stages", 0, "steps")) == mark(5, 12)
    assert document.source.line_text(4) == "  - name: build"


def test_load_file_crlf_syntax_error_excerpt(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_bytes(b"version: 1\r\n name: x\r\n")
    with pytest.raises(PipelineError) as raised:
        load_file(Path("shipline.yml"))
    assert str(raised.value).splitlines()[1:] == ["   name: x", "       ^"]


def test_load_file_relative_display_name(in_tmp_path: Path) -> None:
    (in_tmp_path / "ci").mkdir()
    (in_tmp_path / "ci" / "shipline.yml").write_text("version: 1\n", encoding="utf-8")
    document = load_file(Path("ci/shipline.yml"))
    assert document.display_name == "ci/shipline.yml"
    assert document.source.value_mark(("version",)) == Mark("ci/shipline.yml", 1, 10)


# --- default file --------------------------------------------------------------------


def test_find_default_file_yml(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_text("version: 1\n", encoding="utf-8")
    assert find_default_file(Path(".")) == Path("shipline.yml")


def test_find_default_file_yaml(in_tmp_path: Path) -> None:
    (in_tmp_path / "ci").mkdir()
    (in_tmp_path / "ci" / "shipline.yaml").write_text("version: 1\n", encoding="utf-8")
    assert find_default_file(Path("ci")) == Path("ci/shipline.yaml")


def test_find_default_file_both(in_tmp_path: Path) -> None:
    (in_tmp_path / "shipline.yml").write_text("version: 1\n", encoding="utf-8")
    (in_tmp_path / "shipline.yaml").write_text("version: 1\n", encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        find_default_file(Path("."))
    assert str(raised.value) == (
        "both shipline.yml and shipline.yaml exist; "
        "pass the one to use as the pipeline file argument"
    )


def test_find_default_file_neither(in_tmp_path: Path) -> None:
    (in_tmp_path / "ci").mkdir()
    with pytest.raises(UsageError) as raised:
        find_default_file(Path("ci"))
    assert str(raised.value) == (
        "no pipeline file found: neither ci/shipline.yml nor ci/shipline.yaml exists; "
        "create one or pass the pipeline file as an argument"
    )


# --- size ----------------------------------------------------------------------------


def large_pipeline(stage_count: int) -> str:
    """Return a pipeline with ``stage_count`` stages of deploy, gate and notify steps."""
    lines = ["version: 1", "name: large", "stages:"]
    for index in range(stage_count):
        lines += [
            f"  - name: stage-{index}",
            f"    needs: [stage-{max(index - 1, 0)}]",
            "    environment: production",
            "    steps:",
            "      - deploy:",
            f'          version: "1.4.{index}"',
            "          strategy: canary",
            "          steps:",
            "            - set_weight: 20",
            "            - pause: 30s",
            "            - analysis: error-rate",
            "            - set_weight: 100",
            '      - gate: {uses: http, url: "https://shop.example/healthz"}',
            '      - notify: {uses: slack, url: "${SLACK_WEBHOOK_URL}"}',
        ]
    return "\n".join(lines) + "\n"


def test_load_text_two_thousand_stages() -> None:
    document = load_text(large_pipeline(2000), "shipline.yml")
    stages = document.data["stages"]
    assert len(stages) == 2000
    assert stages[1999]["steps"][0]["deploy"]["version"] == "1.4.1999"
    last_weight = ("stages", 1999, "steps", 0, "deploy", "steps", 3, "set_weight")
    assert document.source.value_mark(last_weight) == mark(3 + 1999 * 14 + 12, 27)
