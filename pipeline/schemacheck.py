"""A check compiled from a JSON Schema that decides whether a document is valid, and nothing else.

jsonschema's ``Draft202012Validator`` applies every keyword through a generic descent
that costs microseconds per value. On the 2,000-stage pipeline that
``bench/validate_large.py --jsonschema`` generates, its ``is_valid`` took about 1.6 s,
and validate() with this check about 0.09 s, compiling the check included (fastest of
15 runs, Python 3.11, jsonschema 4.26, 2-core AMD EPYC virtual machine). Most documents
are valid, so :func:`pipeline.schema.validate` first runs the check that
:func:`compile_fast_check` builds from the schema out of plain closures, and runs
jsonschema only when that check fails, to explain the failure with messages.

The check applies the draft 2020-12 keywords with jsonschema's rules: a boolean is not
a number, 1 equals 1.0, 2.0 is an integer, ``format`` only annotates, ``pattern`` uses
``re.search``.

Safety rule: the check must give jsonschema's verdict, because jsonschema never validates a
document that the check accepts. A schema with any other keyword that jsonschema
asserts (``unevaluatedItems``, ``$dynamicRef``, ...), an embedded ``$id`` or a ``$ref``
outside the schema therefore gets no fast check: :func:`compile_fast_check` returns
None and validate() falls back to jsonschema alone. A wrong "invalid" costs only time,
because validate() then runs jsonschema, which accepts the document.

:func:`skipping_validator` serves the jsonschema pass on an invalid document: it
descends only into the values that their subschema's fast check rejects.
"""

from __future__ import annotations

import logging
import numbers
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

logger = logging.getLogger("shipline")

#: The result of a compiled check for a valid instance: the keys of a mapping that the
#: schema evaluated (for ``unevaluatedProperties``), or an arbitrary set when the
#: check was compiled without ``collect``.
_Evaluated = AbstractSet[Any]
_Check = Callable[[Any], "_Evaluated | None"]
_Assertion = Callable[[Any], bool]

_NOTHING_EVALUATED: frozenset[Any] = frozenset()

#: The keywords that jsonschema applies and the fast check implements; ``format`` is
#: only an annotation because the validator is created without a format checker.
_FAST_KEYWORDS = frozenset(
    {
        "$ref", "additionalProperties", "allOf", "anyOf", "const", "contains",
        "dependentRequired", "dependentSchemas", "enum", "exclusiveMaximum",
        "exclusiveMinimum", "format", "if", "items", "maxItems", "maxLength",
        "maxProperties", "maximum", "minItems", "minLength", "minProperties", "minimum",
        "multipleOf", "not", "oneOf", "pattern", "patternProperties", "prefixItems",
        "properties", "propertyNames", "required", "type", "unevaluatedProperties",
        "uniqueItems",
    }
)
#: The assertion and applicator keywords of draft 2020-12, as jsonschema 4.26 lists them
#: in ``Draft202012Validator.VALIDATORS``. The set is written out so that a valid
#: document never imports jsonschema. A test fails when jsonschema's set differs.
DRAFT_2020_12_KEYWORDS = _FAST_KEYWORDS | {"$dynamicRef", "unevaluatedItems"}


class _UnsupportedSchemaError(Exception):
    """The schema uses a keyword or reference that the fast check does not implement."""


class FastCheck:
    """The compiled check of a schema; compiles the checks of its subschemas on request."""

    def __init__(self, compiler: _FastCheckCompiler, check: _Check) -> None:
        self._compiler = compiler
        self._check = check

    def check(self, instance: Any) -> _Evaluated | None:
        """Return the evaluated keys if ``instance`` is valid, None if it is not or if
        its check met a subschema that only jsonschema can check."""
        return _unless_unsupported(self._check, instance)

    def check_for(self, subschema: Any) -> _Check:
        """Return the check of ``subschema``, an object or boolean inside the schema.

        The check returns None, as for an invalid value, where the subschema needs
        jsonschema itself.
        """
        try:
            check = self._compiler.compile(subschema, collect=False)
        except _UnsupportedSchemaError as exc:
            logger.debug("part of the schema is validated by jsonschema only: %s", exc)
            return _reject
        return lambda instance: _unless_unsupported(check, instance)

    def resolve(self, reference: str) -> Any:
        """Return the subschema at a local ``$ref``, or raise _UnsupportedSchemaError."""
        return self._compiler.resolve(reference)


def compile_fast_check(schema: Mapping[str, Any]) -> FastCheck | None:
    """Return the fast check of ``schema``, or None if it needs jsonschema itself."""
    compiler = _FastCheckCompiler(schema)
    try:
        check = compiler.compile(schema, collect=False)
    except _UnsupportedSchemaError as exc:
        logger.debug("schema validated by jsonschema only: %s", exc)
        return None
    return FastCheck(compiler, check)


def skipping_validator(fast: FastCheck, schema: Mapping[str, Any]) -> Validator:
    """Return a jsonschema validator that skips the values the fast check accepts.

    Only an invalid document reaches jsonschema, and in a long list of stages most
    items are usually valid. ``items`` and ``properties`` descend only into the values
    whose subschema's fast check fails, so the errors are the same, found sooner.
    ``unevaluatedProperties`` is not affected: jsonschema finds evaluated keys by
    reading the schema, not by calling these keyword functions.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend as extend_validator

    plain_items = Draft202012Validator.VALIDATORS["items"]

    def failing(subschema: Any, value: Any) -> bool:
        return fast.check_for(subschema)(value) is None

    def items(
        validator: Any, items_schema: Any, instance: Any, parent: Any
    ) -> Iterator[ValidationError]:
        if not isinstance(items_schema, dict) or not isinstance(instance, list):
            yield from plain_items(validator, items_schema, instance, parent)
            return
        for index in range(len(parent.get("prefixItems", [])), len(instance)):
            if failing(items_schema, instance[index]):
                yield from validator.descend(instance[index], items_schema, path=index)

    def properties(
        validator: Any, named: Any, instance: Any, parent: Any
    ) -> Iterator[ValidationError]:
        if not isinstance(instance, dict):
            return
        for name, subschema in named.items():
            if name in instance and failing(subschema, instance[name]):
                yield from validator.descend(
                    instance[name], subschema, path=name, schema_path=name
                )

    # types-jsonschema leaves extend() untyped; it returns a validator class.
    extend = cast("Callable[..., Callable[[Mapping[str, Any]], Validator]]", extend_validator)
    keywords = {"items": items, "properties": properties}
    return extend(Draft202012Validator, keywords)(schema)


class _FastCheckCompiler:
    """Compiler of schemas into checks. With ``collect``, a check returns evaluated keys."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.references: dict[tuple[str, bool], _Check] = {}
        #: Checks without key collection, by ``id`` of the schema object compiled.
        self.subschema_checks: dict[int, _Check] = {}

    def compile(self, schema: Any, *, collect: bool) -> _Check:
        if schema is True:
            return _accept
        if schema is False:
            return _reject
        if not collect and id(schema) in self.subschema_checks:
            return self.subschema_checks[id(schema)]
        check = self._compile_object(schema, collect=collect)
        if not collect:
            self.subschema_checks[id(schema)] = check
        return check

    def _compile_object(self, schema: Any, *, collect: bool) -> _Check:
        if not isinstance(schema, Mapping):
            raise _UnsupportedSchemaError(f"{schema!r} is not a schema")
        if "$id" in schema and schema is not self.root:
            raise _UnsupportedSchemaError("an embedded $id changes how references resolve")
        unsupported = (schema.keys() & DRAFT_2020_12_KEYWORDS) - _FAST_KEYWORDS
        if unsupported:
            raise _UnsupportedSchemaError(f"keywords {sorted(unsupported)}")

        unevaluated = schema.get("unevaluatedProperties")
        collect_here = collect or unevaluated is not None
        assertions = self._assertions(schema)
        applicators = self._applicators(schema, collect=collect_here)
        if unevaluated is None and not collect:
            return _plain_node(assertions, applicators)
        unevaluated_check = None
        if unevaluated is not None:
            unevaluated_check = self.compile(unevaluated, collect=False)
        return _collecting_node(assertions, applicators, unevaluated_check)

    def _assertions(self, schema: Mapping[str, Any]) -> list[_Assertion]:
        found = [
            _ASSERTIONS[keyword](value, schema)
            for keyword, value in schema.items()
            if keyword in _ASSERTIONS
        ]
        if "items" in schema or "prefixItems" in schema:
            found.append(self._items(schema))
        if "contains" in schema:
            found.append(self._contains(schema))
        if "propertyNames" in schema:
            found.append(_all_keys(self.compile(schema["propertyNames"], collect=False)))
        if "not" in schema:
            negated = self.compile(schema["not"], collect=False)
            found.append(lambda instance: negated(instance) is None)
        return found

    def _applicators(self, schema: Mapping[str, Any], *, collect: bool) -> list[_Check]:
        found: list[_Check] = []
        if schema.keys() & {"properties", "patternProperties", "additionalProperties"}:
            found.append(self._properties(schema, collect=collect))
        if "$ref" in schema:
            found.append(self._reference(schema["$ref"], collect=collect))
        if "allOf" in schema:
            found.append(_all_of([self.compile(s, collect=collect) for s in schema["allOf"]]))
        if "anyOf" in schema:
            branches = [self.compile(s, collect=collect) for s in schema["anyOf"]]
            found.append(_any_of(branches, collect=collect))
        if "oneOf" in schema:
            found.append(_one_of([self.compile(s, collect=collect) for s in schema["oneOf"]]))
        if "if" in schema:
            found.append(self._conditional(schema, collect=collect))
        if "dependentSchemas" in schema:
            dependent = {
                key: self.compile(sub, collect=collect)
                for key, sub in schema["dependentSchemas"].items()
            }
            found.append(_dependent_schemas(dependent))
        return found

    def _properties(self, schema: Mapping[str, Any], *, collect: bool) -> _Check:
        named = {
            key: self.compile(sub, collect=False)
            for key, sub in schema.get("properties", {}).items()
        }
        patterns = [
            (re.compile(pattern), self.compile(sub, collect=False))
            for pattern, sub in schema.get("patternProperties", {}).items()
        ]
        additional = None
        if "additionalProperties" in schema:
            additional = self.compile(schema["additionalProperties"], collect=False)
        return _mapping_members(named, patterns, additional, collect=collect)

    def _reference(self, reference: str, *, collect: bool) -> _Check:
        key = (reference, collect)
        known = self.references.get(key)
        if known is not None:
            return known

        # A recursive reference meets this placeholder until its target is compiled.
        compiled: list[_Check] = []

        def forward(instance: Any) -> _Evaluated | None:
            return compiled[0](instance)

        self.references[key] = forward
        compiled.append(self.compile(self.resolve(reference), collect=collect))
        self.references[key] = compiled[0]
        return compiled[0]

    def resolve(self, reference: str) -> Any:
        """Return the subschema at a local ``$ref`` such as ``#/$defs/stage``."""
        if not reference.startswith("#"):
            raise _UnsupportedSchemaError(f"$ref {reference!r} is not a local JSON pointer")
        target: Any = self.root
        for token in unquote(reference[1:]).split("/")[1:]:
            part = token.replace("~1", "/").replace("~0", "~")
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError) as exc:
                raise _UnsupportedSchemaError(f"$ref {reference!r} does not resolve") from exc
        return target

    def _conditional(self, schema: Mapping[str, Any], *, collect: bool) -> _Check:
        condition = self.compile(schema["if"], collect=collect)
        then = self._on_first_use(schema["then"], collect=collect) if "then" in schema else None
        otherwise = (self._on_first_use(schema["else"], collect=collect)
                     if "else" in schema else None)
        return _if_then_else(condition, then, otherwise, collect=collect)

    def _on_first_use(self, schema: Any, *, collect: bool) -> _Check:
        """Return a check that compiles ``schema`` when it first runs.

        The pipeline schema contains each plugin's options in an ``if``/``then`` per step
        type, and a pipeline uses few of them: compiling every branch at start took
        most of the 11 ms of compiling the schema. A branch with a keyword that the fast
        check does not implement raises _UnsupportedSchemaError when it first runs.
        """
        compiled: list[_Check] = []

        def check(instance: Any) -> _Evaluated | None:
            if not compiled:
                compiled.append(self.compile(schema, collect=collect))
            return compiled[0](instance)

        return check

    def _items(self, schema: Mapping[str, Any]) -> _Assertion:
        prefix = [self.compile(sub, collect=False) for sub in schema.get("prefixItems", [])]
        rest = self.compile(schema["items"], collect=False) if "items" in schema else _accept

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return True
            for item, sub in zip(instance, prefix, strict=False):
                if sub(item) is None:
                    return False
            return all(rest(item) is not None for item in instance[len(prefix) :])

        return check

    def _contains(self, schema: Mapping[str, Any]) -> _Assertion:
        contained = self.compile(schema["contains"], collect=False)
        low = schema.get("minContains", 1)
        high = schema.get("maxContains")

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return True
            matches = sum(1 for item in instance if contained(item) is not None)
            return matches >= low and (high is None or matches <= high)

        return check


def _unless_unsupported(check: _Check, instance: Any) -> _Evaluated | None:
    """Run ``check``; return None, so that jsonschema decides, where it meets a
    subschema that the fast check does not implement."""
    try:
        return check(instance)
    except _UnsupportedSchemaError as exc:
        logger.debug("part of the schema is validated by jsonschema only: %s", exc)
        return None


def _accept(instance: Any) -> _Evaluated:
    return _NOTHING_EVALUATED


def _reject(instance: Any) -> None:
    return None


def _plain_node(assertions: Sequence[_Assertion], applicators: Sequence[_Check]) -> _Check:
    """Return a check that applies every keyword and collects no keys."""
    assertions = tuple(assertions)
    applicators = tuple(applicators)

    def check(instance: Any) -> _Evaluated | None:
        for assertion in assertions:
            if not assertion(instance):
                return None
        for applicator in applicators:
            if applicator(instance) is None:
                return None
        return _NOTHING_EVALUATED

    return check


def _collecting_node(
    assertions: Sequence[_Assertion],
    applicators: Sequence[_Check],
    unevaluated: _Check | None,
) -> _Check:
    """Return a check that also collects evaluated keys and applies ``unevaluatedProperties``."""
    assertions = tuple(assertions)
    applicators = tuple(applicators)

    def check(instance: Any) -> _Evaluated | None:
        for assertion in assertions:
            if not assertion(instance):
                return None
        evaluated: set[Any] = set()
        for applicator in applicators:
            keys = applicator(instance)
            if keys is None:
                return None
            evaluated.update(keys)
        if unevaluated is not None and isinstance(instance, dict):
            for key, value in instance.items():
                if key not in evaluated and unevaluated(value) is None:
                    return None
            evaluated.update(instance)
        return evaluated

    return check


def _mapping_members(
    named: Mapping[str, _Check],
    patterns: Sequence[tuple[re.Pattern[str], _Check]],
    additional: _Check | None,
    *,
    collect: bool,
) -> _Check:
    """Apply ``properties``, ``patternProperties`` and ``additionalProperties``."""

    def check(instance: Any) -> _Evaluated | None:
        if not isinstance(instance, dict):
            return _NOTHING_EVALUATED
        evaluated: set[Any] = set()
        for key, value in instance.items():
            matched = False
            sub = named.get(key)
            if sub is not None:
                if sub(value) is None:
                    return None
                matched = True
            for regex, pattern_check in patterns:
                if regex.search(key):
                    if pattern_check(value) is None:
                        return None
                    matched = True
            if not matched and additional is not None:
                if additional(value) is None:
                    return None
                matched = True
            if matched and collect:
                evaluated.add(key)
        return evaluated

    return check


def _all_of(branches: Sequence[_Check]) -> _Check:
    def check(instance: Any) -> _Evaluated | None:
        evaluated: set[Any] = set()
        for branch in branches:
            keys = branch(instance)
            if keys is None:
                return None
            evaluated.update(keys)
        return evaluated

    return check


def _any_of(branches: Sequence[_Check], *, collect: bool) -> _Check:
    def check(instance: Any) -> _Evaluated | None:
        # Collecting keys needs every valid branch, not only the first.
        evaluated: set[Any] | None = None
        for branch in branches:
            keys = branch(instance)
            if keys is None:
                continue
            if not collect:
                return _NOTHING_EVALUATED
            evaluated = (evaluated or set()) | keys
        return evaluated

    return check


def _one_of(branches: Sequence[_Check]) -> _Check:
    def check(instance: Any) -> _Evaluated | None:
        chosen: _Evaluated | None = None
        for branch in branches:
            keys = branch(instance)
            if keys is None:
                continue
            if chosen is not None:
                return None
            chosen = keys
        return chosen

    return check


def _if_then_else(
    condition: _Check, then: _Check | None, otherwise: _Check | None, *, collect: bool
) -> _Check:
    def check(instance: Any) -> _Evaluated | None:
        condition_keys = condition(instance)
        if condition_keys is None:
            return _NOTHING_EVALUATED if otherwise is None else otherwise(instance)
        if then is None:
            return condition_keys
        then_keys = then(instance)
        if then_keys is None or not collect:
            return then_keys
        return set(condition_keys) | set(then_keys)

    return check


def _dependent_schemas(dependent: Mapping[str, _Check]) -> _Check:
    def check(instance: Any) -> _Evaluated | None:
        evaluated: set[Any] = set()
        if not isinstance(instance, dict):
            return evaluated
        for key, sub in dependent.items():
            if key in instance:
                keys = sub(instance)
                if keys is None:
                    return None
                evaluated.update(keys)
        return evaluated

    return check


def _all_keys(sub: _Check) -> _Assertion:
    return lambda instance: not isinstance(instance, dict) or all(
        sub(key) is not None for key in instance
    )


# -- assertion keywords of the fast check ------------------------------------------------


def is_number(value: Any) -> bool:
    """Tell whether ``value`` is a JSON number. A bool is not, although it is an int."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_TESTS: dict[str, _Assertion] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "number": is_number,
    "integer": _is_integer,
}


def _assert_type(expected: Any, schema: Mapping[str, Any]) -> _Assertion:
    names = [expected] if isinstance(expected, str) else list(expected)
    if any(name not in _TYPE_TESTS for name in names):
        raise _UnsupportedSchemaError(f"type {expected!r}")
    tests = [_TYPE_TESTS[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _json_equal(one: Any, two: Any) -> bool:
    """Compare like JSON: ``true`` differs from ``1``, ``1`` equals ``1.0``."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, (list, tuple)) and isinstance(two, (list, tuple)):
        return len(one) == len(two) and all(
            _json_equal(a, b) for a, b in zip(one, two, strict=True)
        )
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_json_equal(one[k], two[k]) for k in one)
    if isinstance(one, (list, tuple, dict)) or isinstance(two, (list, tuple, dict)):
        return False
    return bool(one == two)


def _assert_enum(allowed: Any, schema: Mapping[str, Any]) -> _Assertion:
    values = list(allowed)
    if all(isinstance(value, str) for value in values):
        strings = frozenset(values)
        return lambda value: isinstance(value, str) and value in strings
    return lambda value: any(_json_equal(value, each) for each in values)


def _assert_const(expected: Any, schema: Mapping[str, Any]) -> _Assertion:
    if isinstance(expected, str):
        return lambda value: isinstance(value, str) and value == expected
    return lambda value: _json_equal(value, expected)


def _assert_unique(unique: Any, schema: Mapping[str, Any]) -> _Assertion:
    def check(value: Any) -> bool:
        if not unique or not isinstance(value, list):
            return True
        if all(isinstance(item, str) for item in value):
            return len(set(value)) == len(value)
        return not any(
            _json_equal(value[i], value[j]) for i in range(len(value)) for j in range(i)
        )

    return check


def _assert_multiple_of(divisor: Any, schema: Mapping[str, Any]) -> _Assertion:
    def check(value: Any) -> bool:
        if not is_number(value):
            return True
        if isinstance(divisor, float):
            quotient = value / divisor
            try:
                return bool(int(quotient) == quotient)
            except OverflowError:
                from fractions import Fraction  # Imported here: it imports decimal.

                return (Fraction(value) / Fraction(divisor)).denominator == 1
        return not value % divisor

    return check


def _assert_pattern(pattern: Any, schema: Mapping[str, Any]) -> _Assertion:
    regex = re.compile(pattern)
    return lambda value: not isinstance(value, str) or regex.search(value) is not None


def _number_bound(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], _Assertion]:
    def make(limit: Any, schema: Mapping[str, Any]) -> _Assertion:
        return lambda value: not is_number(value) or compare(value, limit)

    return make


def _size_bound(
    kind: type[Any], compare: Callable[[int, Any], bool]
) -> Callable[[Any, Any], _Assertion]:
    def make(limit: Any, schema: Mapping[str, Any]) -> _Assertion:
        def check(value: Any) -> bool:
            return not isinstance(value, kind) or compare(len(value), limit)

        return check

    return make


def _assert_required(keys: Any, schema: Mapping[str, Any]) -> _Assertion:
    required = frozenset(keys)
    return lambda value: not isinstance(value, dict) or required <= value.keys()


def _assert_dependent_required(dependencies: Any, schema: Mapping[str, Any]) -> _Assertion:
    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        return all(
            all(needed in value for needed in needs)
            for key, needs in dependencies.items()
            if key in value
        )

    return check


_ASSERTIONS: dict[str, Callable[[Any, Mapping[str, Any]], _Assertion]] = {
    "type": _assert_type,
    "enum": _assert_enum,
    "const": _assert_const,
    "uniqueItems": _assert_unique,
    "multipleOf": _assert_multiple_of,
    "pattern": _assert_pattern,
    "minimum": _number_bound(operator.ge),
    "maximum": _number_bound(operator.le),
    "exclusiveMinimum": _number_bound(operator.gt),
    "exclusiveMaximum": _number_bound(operator.lt),
    "minLength": _size_bound(str, operator.ge),
    "maxLength": _size_bound(str, operator.le),
    "minItems": _size_bound(list, operator.ge),
    "maxItems": _size_bound(list, operator.le),
    "minProperties": _size_bound(dict, operator.ge),
    "maxProperties": _size_bound(dict, operator.le),
    "required": _assert_required,
    "dependentRequired": _assert_dependent_required,
}
