"""The JSON Schema of pipeline files, the fragments plugins add to it, and validation.

:func:`build_schema` merges the core schema (``schemas/pipeline.schema.json``,
draft 2020-12) with one :class:`StepSchema` fragment per registered type.
:func:`validate` checks a loaded document against the result and raises
:class:`~pipeline.errors.PipelineError` with every problem, sorted by position.

Each problem becomes one diagnostic, ``file:line:col: path: message (hint)``:

- The path is the document path of the failing value. For a key error (an unknown
  key, a missing required key or an invalid mapping key) it is the mapping that
  contains the key, and the message names the key:
  ``stages[0]: unknown key 'neeeds' (did you mean 'needs'?)``. The mark points at the
  unknown or invalid key itself, and for a missing key at the mapping's own key.
- Where a value may take several forms (``oneOf``, ``anyOf``), only the most relevant
  failure is reported. A step that has none, or more than one, of ``deploy``, ``scan``,
  ``gate`` and ``notify`` gets one message that names the four keys and those found.
- An unquoted number where a string is expected is not an error: YAML resolved it to
  a number, but the user meant the text. The value in ``document.data`` is replaced
  by the exact text from the file (``SourceMap.plain_text``), so ``version: 1.10``
  becomes ``"1.10"`` and ``mode: 0755`` stays ``"0755"``, and the document is
  validated again. A boolean or null in the same place stays an error with the hint
  ``quote the value: "true"``, because ``true`` and ``null`` are far more often a
  mistake than a name.

A valid document never reaches jsonschema, which is too slow for large pipelines.
A check compiled from the schema into plain Python closures decides validity first
(see "fast validity check" below). jsonschema runs only on an invalid document, to
produce the messages.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import logging
import numbers
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, relevance
from jsonschema.validators import extend as extend_validator

from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.durations import DURATION_HELP, DURATION_PATTERN
from pipeline.errors import PipelineError, PluginError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from pipeline.loader import Document

logger = logging.getLogger("shipline")

#: The kinds of type a plugin can register a fragment for.
KINDS = ("deploy", "scan", "gate", "notify", "target", "router", "analysis")

#: Per kind: the key that selects the type, and the ``$defs`` entries that accept it.
#: A ``notify`` type serves both notify steps and the top-level ``notifications``.
_SELECTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "deploy": ("strategy", ("deploy",)),
    "scan": ("uses", ("scan",)),
    "gate": ("uses", ("gate",)),
    "notify": ("uses", ("notify", "notification")),
    "target": ("type", ("target",)),
    "router": ("type", ("router",)),
    "analysis": ("provider", ("analysis",)),
}

#: The noun that messages about fragments use for a type of each kind.
_KIND_NOUNS = {
    "deploy": "strategy",
    "scan": "scanner",
    "gate": "gate",
    "notify": "notifier",
    "target": "target",
    "router": "router",
    "analysis": "analysis provider",
}

_CORE_FILE = "pipeline.schema.json"

_DEFS_REF = "#/$defs/"

#: Draft 2020-12 keywords whose value is a subschema, a list of them or a map of them.
_SUBSCHEMA_KEYWORDS = frozenset(
    {
        "additionalProperties", "contains", "else", "if", "items", "not", "propertyNames",
        "then", "unevaluatedItems", "unevaluatedProperties",
    }
)
_SUBSCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "dependentSchemas", "patternProperties", "properties"}
)


@dataclass(frozen=True)
class StepSchema:
    """The JSON Schema of the options of one type that a plugin registers.

    ``schema`` describes the keys of the block besides the selector (``strategy`` for
    ``deploy``, ``uses`` for scan, gate and notify, ``type`` for target and router,
    ``provider`` for analysis). It may use ``properties``, ``required``, ``$defs`` and
    local ``$ref`` into its own ``$defs``. Unknown keys are rejected by the core schema,
    so the fragment must not set ``additionalProperties: false`` itself: that would also
    reject the selector and the core keys.
    """

    #: One of :data:`KINDS`.
    kind: str
    #: The strategy name, ``uses`` value, target or router ``type``, or ``provider``.
    type: str
    #: JSON Schema (an object) of the options.
    schema: Mapping[str, Any]
    #: Name of the plugin that registers the type, for error messages.
    plugin: str = ""
    #: Help text for editors, used when the fragment has no ``description`` of its own.
    description: str = ""


# -- building the schema -----------------------------------------------------------------


def core_schema() -> dict[str, Any]:
    """Return a copy of the core schema, without any plugin fragment."""
    return copy.deepcopy(_load_core())


@cache
def _load_core() -> dict[str, Any]:
    # In a wheel the file is packaged as pipeline/schemas/ (a hatch force-include);
    # in a source checkout it is in schemas/ at the repository root.
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas" / _CORE_FILE, here.parent / "schemas" / _CORE_FILE):
        if candidate.is_file():
            loaded: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return loaded
    raise FileNotFoundError(f"{_CORE_FILE} is missing from {here} and {here.parent / 'schemas'}")


def build_schema(fragments: Sequence[StepSchema]) -> dict[str, Any]:
    """Return the core schema with every fragment merged in.

    For each kind, the selector key accepts exactly the registered types (an ``enum``,
    sorted), and each fragment applies through ``allOf: [{if: <selector is T>, then:
    <fragment>}]``. ``unevaluatedProperties: false`` on the core object keeps rejecting
    keys that neither the core nor the selected fragment declares. A fragment's
    ``$defs`` move to the root ``$defs`` as ``<kind>.<type>.<name>``.

    Raises PluginError, naming the plugin, for an unknown kind, an empty type, two
    plugins registering the same kind and type, or a fragment that is not a valid
    JSON Schema.
    """
    schema = core_schema()
    registered = _index_fragments(fragments)

    for kind, (selector, def_names) in _SELECTORS.items():
        options = {
            type_name: _prepare_fragment(fragment, schema["$defs"])
            for type_name, fragment in sorted(registered.get(kind, {}).items())
        }
        for def_name in def_names:
            _attach(schema["$defs"][def_name], selector, options)
    return schema


def _index_fragments(fragments: Sequence[StepSchema]) -> dict[str, dict[str, StepSchema]]:
    by_kind: dict[str, dict[str, StepSchema]] = {}
    for fragment in fragments:
        if fragment.kind not in KINDS:
            raise PluginError(
                f"{_plugin_label(fragment)} registers a schema of unknown kind "
                f"{fragment.kind!r}: expected one of {_join_quoted(KINDS, 'or')}"
            )
        if not isinstance(fragment.type, str) or not fragment.type:
            raise PluginError(
                f"{_plugin_label(fragment)} registers a {_KIND_NOUNS[fragment.kind]} schema "
                f"with an invalid type {fragment.type!r}: expected a non-empty string"
            )

        same_kind = by_kind.setdefault(fragment.kind, {})
        earlier = same_kind.get(fragment.type)
        if earlier is not None:
            raise PluginError(
                f"{_plugin_label(earlier)} and {_plugin_label(fragment)} both register the "
                f"{_KIND_NOUNS[fragment.kind]} {fragment.type!r}: block one of them "
                f"with -p no:NAME"
            )
        same_kind[fragment.type] = fragment
    return by_kind


def _prepare_fragment(fragment: StepSchema, root_defs: dict[str, Any]) -> dict[str, Any]:
    """Check the fragment, move its ``$defs`` into ``root_defs`` and return the rest."""
    noun = f"{_KIND_NOUNS[fragment.kind]} {fragment.type!r}"
    label = f"{_plugin_label(fragment)} registers an invalid schema for the {noun}"
    try:
        plain = _to_json(fragment.schema)
    except TypeError as exc:
        raise PluginError(f"{label}: {exc}") from exc
    if not isinstance(plain, dict):
        raise PluginError(f"{label}: expected a JSON Schema object, got {type(plain).__name__}")

    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        raise PluginError(f"{label}: {exc.message} (at {exc.json_path})") from exc

    namespace = f"{fragment.kind}.{fragment.type}."
    own_defs = plain.pop("$defs", {})
    try:
        _rewrite_refs(plain, own_defs, namespace)
        for definition in own_defs.values():
            _rewrite_refs(definition, own_defs, namespace)
    except ValueError as exc:
        raise PluginError(f"{label}: {exc}") from exc

    for name, definition in own_defs.items():
        root_defs[namespace + name] = definition
    if fragment.description and "description" not in plain:
        plain["description"] = fragment.description
    return plain


def _to_json(value: Any) -> Any:
    """Copy ``value`` into plain dicts and lists; raise TypeError on non-JSON data."""
    if isinstance(value, Mapping):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, got {key!r}")
            copied[key] = _to_json(item)
        return copied
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON data: {value!r}")


def _rewrite_refs(schema: Any, own_defs: Mapping[str, Any], namespace: str) -> None:
    """Point each ``#/$defs/NAME`` reference in ``schema`` at ``#/$defs/<namespace>NAME``.

    Only keywords that hold subschemas are followed, so a property named ``default`` or
    ``enum`` is still rewritten and data inside ``const`` or ``examples`` is left alone.
    Raises ValueError for any other reference, because it could not resolve once the
    fragment is embedded in the pipeline schema.
    """
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        schema["$ref"] = _namespaced_ref(schema["$ref"], own_defs, namespace)

    for keyword, value in schema.items():
        if keyword in _SUBSCHEMA_KEYWORDS:
            _rewrite_refs(value, own_defs, namespace)
        elif keyword in _SUBSCHEMA_LIST_KEYWORDS and isinstance(value, list):
            for item in value:
                _rewrite_refs(item, own_defs, namespace)
        elif keyword in _SUBSCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            for item in value.values():
                _rewrite_refs(item, own_defs, namespace)


def _namespaced_ref(ref: Any, own_defs: Mapping[str, Any], namespace: str) -> str:
    if not isinstance(ref, str) or not ref.startswith(_DEFS_REF):
        raise ValueError(f"$ref {ref!r} must point into the fragment's own $defs")

    first, slash, rest = ref[len(_DEFS_REF) :].partition("/")
    name = unquote(first).replace("~1", "/").replace("~0", "~")
    if name not in own_defs:
        raise ValueError(f"$ref {ref!r} names a definition that its $defs does not contain")

    pointer = (namespace + name).replace("~", "~0").replace("/", "~1")
    return _DEFS_REF + quote(pointer, safe="~.-_!$&'()*+,;=:@") + slash + rest


def _attach(definition: dict[str, Any], selector: str, options: Mapping[str, Any]) -> None:
    """Restrict ``selector`` to the registered types and add one if/then per type."""
    definition["properties"][selector]["enum"] = list(options)
    branches = [
        {
            "if": {"properties": {selector: {"const": type_name}}, "required": [selector]},
            "then": copy.deepcopy(fragment),
        }
        for type_name, fragment in options.items()
    ]
    if branches:
        definition["allOf"] = branches


def _plugin_label(fragment: StepSchema) -> str:
    return f"plugin {fragment.plugin!r}" if fragment.plugin else "a plugin without a name"


# -- validation --------------------------------------------------------------------------


def validate(document: Document, schema: Mapping[str, Any]) -> None:
    """Validate ``document`` against ``schema``; raise PipelineError with every problem.

    Numbers typed where a string is expected are first replaced in ``document.data``
    by their text (see the module docstring), so a valid document may come back
    changed.
    """
    compiled = _compiled(schema)
    if _passes_fast_check(compiled, document):
        return

    replaced_any = False
    while True:
        failures = _failures(compiled.validator, document.data)
        if not _replace_numbers_by_text(document, failures):
            break
        replaced_any = True

    diagnostics: dict[tuple[Mark | None, DocPath, str, str | None], Diagnostic] = {}
    for failure in failures:
        for diagnostic in _describe(failure, document, compiled.validator):
            key = (diagnostic.mark, diagnostic.path, diagnostic.message, diagnostic.hint)
            diagnostics.setdefault(key, diagnostic)
    if diagnostics:
        raise PipelineError(list(diagnostics.values()))
    if not replaced_any and compiled.fast is not None:
        logger.debug("the fast check rejected %s but jsonschema accepts it", document.display_name)


def _passes_fast_check(compiled: _CompiledSchema, document: Document) -> bool:
    """Tell whether the fast check accepts the document, after replacing numbers if needed."""
    fast = compiled.fast
    if fast is None:
        return False
    if fast.check(document.data) is not None:
        return True
    replaced = _replace_numbers_fast(fast, compiled.schema, document)
    return replaced and fast.check(document.data) is not None


@dataclass(frozen=True)
class _CompiledSchema:
    """A schema with its jsonschema validator and its fast check, if it has one."""

    schema: Mapping[str, Any]
    validator: Validator
    fast: _FastCheck | None


#: Compiled schemas by ``id`` of the schema. Each entry keeps its schema alive, so no
#: other object can get the same id while the entry is cached.
_compiled_schemas: dict[int, _CompiledSchema] = {}
_MAX_COMPILED_SCHEMAS = 8


def _compiled(schema: Mapping[str, Any]) -> _CompiledSchema:
    cached = _compiled_schemas.get(id(schema))
    if cached is not None and cached.schema is schema:
        return cached

    fast = _compile_fast_check(schema)
    validator = Draft202012Validator(schema) if fast is None else _skipping_validator(fast, schema)
    compiled = _CompiledSchema(schema, validator, fast)
    if len(_compiled_schemas) >= _MAX_COMPILED_SCHEMAS:
        _compiled_schemas.pop(next(iter(_compiled_schemas)))
    _compiled_schemas[id(schema)] = compiled
    return compiled


def _failures(validator: Validator, data: Any) -> list[ValidationError]:
    """Return the error to report for each failure, minus those another one explains.

    A ``oneOf`` or ``anyOf`` failure is replaced by its most relevant sub-error. Other
    errors on a value that has the wrong type are dropped: the type error explains them.
    """
    chosen = [_most_relevant(error) for error in validator.iter_errors(data)]
    wrong_type = {
        tuple(error.absolute_path)
        for error in chosen
        if error.validator == "type" and not _is_key_check(error)
    }
    return [
        error
        for error in chosen
        if error.validator == "type"
        or _is_key_check(error)
        or tuple(error.absolute_path) not in wrong_type
    ]


def _most_relevant(error: ValidationError) -> ValidationError:
    # jsonschema's best_match stops at a oneOf when its sub-errors are equally
    # relevant; going on to the first of them gives a concrete message instead.
    while error.context and not _exactly_one_keys(error):
        error = min(error.context, key=relevance)
    return error


def _is_key_check(error: ValidationError) -> bool:
    """Tell whether the error is about a mapping key (``propertyNames``)."""
    return "propertyNames" in error.absolute_schema_path


def _replace_numbers_by_text(document: Document, failures: Iterable[ValidationError]) -> bool:
    """Replace numbers where a string is expected by their source text; True if any."""
    replaced = False
    for error in failures:
        if not _is_number_for_string(error):
            continue
        path = tuple(error.absolute_path)
        text = document.source.plain_text(path)
        if text is None or not path:
            continue
        _set_value(document.data, path, text)
        replaced = True
    return replaced


def _replace_numbers_fast(fast: _FastCheck, schema: Mapping[str, Any], document: Document) -> bool:
    """Replace numbers by their text where the schema expects a string; True if any.

    This finds what the jsonschema pass would replace without running jsonschema on
    the whole document. It walks only into values that fail their subschema's fast
    check. It follows the keywords that reach a value at a fixed path: ``properties``,
    ``patternProperties``, ``additionalProperties``, ``items``, ``prefixItems``,
    ``$ref``, ``allOf``, and ``then`` or ``else`` as the ``if`` selects. A number
    is replaced when one of its subschemas has a ``type`` that allows a string but no
    number, and its source text passes the subschema. Numbers under ``oneOf`` or
    ``anyOf`` are left to the jsonschema pass.
    """
    replaced = False
    pending: list[tuple[Any, Any, DocPath]] = [(schema, document.data, ())]
    while pending:
        subschema, value, path = pending.pop()
        check = fast.check_for(subschema)
        if check(value) is not None:
            continue

        parts = list(_applicable_parts(fast, subschema, value))
        if isinstance(value, (dict, list)):
            pending.extend(_children(parts, value, path))
            continue
        text = document.source.plain_text(path) if _is_number(value) and path else None
        if text is not None and _wants_text(parts) and check(text) is not None:
            _set_value(document.data, path, text)
            replaced = True
    return replaced


def _children(
    parts: Sequence[Mapping[str, Any]], value: dict[str, Any] | list[Any], path: DocPath
) -> Iterator[tuple[Any, Any, DocPath]]:
    """Yield (subschema, child value, child path) for each member or item of ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            for child in _member_schemas(parts, key):
                yield child, item, (*path, key)
        return
    for index, item in enumerate(value):
        for child in _item_schemas(parts, index):
            yield child, item, (*path, index)


def _applicable_parts(fast: _FastCheck, schema: Any, value: Any) -> Iterator[Mapping[str, Any]]:
    """Yield ``schema`` and the subschemas that apply to the same value at the same path."""
    pending = [schema]
    while pending:
        part = pending.pop()
        if not isinstance(part, Mapping):
            continue
        yield part
        if isinstance(part.get("$ref"), str):
            pending.append(fast.resolve(part["$ref"]))
        pending.extend(part.get("allOf", []))
        if "if" in part:
            chosen = "then" if fast.check_for(part["if"])(value) is not None else "else"
            pending.append(part.get(chosen, True))


def _wants_text(parts: Iterable[Mapping[str, Any]]) -> bool:
    for part in parts:
        expected = part.get("type")
        names = [expected] if isinstance(expected, str) else expected
        if not isinstance(names, list) or "string" not in names:
            continue
        if "number" not in names and "integer" not in names:
            return True
    return False


def _member_schemas(parts: Iterable[Mapping[str, Any]], key: str) -> Iterator[Any]:
    for part in parts:
        matched = False
        properties = part.get("properties", {})
        if key in properties:
            matched = True
            yield properties[key]
        for pattern, child in part.get("patternProperties", {}).items():
            if re.search(pattern, key):
                matched = True
                yield child
        if not matched and "additionalProperties" in part:
            yield part["additionalProperties"]


def _item_schemas(parts: Iterable[Mapping[str, Any]], index: int) -> Iterator[Any]:
    for part in parts:
        prefix = part.get("prefixItems", [])
        if index < len(prefix):
            yield prefix[index]
        elif "items" in part:
            yield part["items"]


def _set_value(data: Any, path: DocPath, value: Any) -> None:
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value


def _is_number_for_string(error: ValidationError) -> bool:
    return (
        error.validator == "type"
        and "string" in _expected_types(error)
        and isinstance(error.instance, (int, float))
        and not isinstance(error.instance, bool)
        and not _is_key_check(error)
    )


# -- messages ----------------------------------------------------------------------------


def _describe(
    error: ValidationError, document: Document, validator: Validator
) -> Iterator[Diagnostic]:
    """Turn one jsonschema error into diagnostics: one per key for key errors."""
    path: DocPath = tuple(error.absolute_path)
    source = document.source
    keyword = error.validator

    if keyword == "required":
        for key in _missing_keys(error):
            mark = source.key_mark(path) or source.value_mark(path)
            yield Diagnostic(f"missing required key {_show(key)}", mark, path)
    elif keyword in ("additionalProperties", "unevaluatedProperties") and (
        error.validator_value is False
    ):
        yield from _unknown_keys(error, path, document, validator)
    elif _is_key_check(error):
        bad_key = str(error.instance)
        mark = source.key_mark((*path, bad_key)) or source.value_mark(path)
        message, hint = _value_message(error)
        yield Diagnostic(message, mark, path, hint)
    elif keyword == "uniqueItems":
        yield _duplicate_item(error, path, document)
    else:
        message, hint = _value_message(error)
        yield Diagnostic(message, source.value_mark(path), path, hint)


def _missing_keys(error: ValidationError) -> list[str]:
    required = error.validator_value
    instance = error.instance
    if not isinstance(required, list) or not isinstance(instance, Mapping):
        return []
    return [key for key in required if key not in instance]


def _unknown_keys(
    error: ValidationError, path: DocPath, document: Document, validator: Validator
) -> Iterator[Diagnostic]:
    instance = error.instance
    if not isinstance(instance, Mapping):
        return
    declared = _declared_keys(error.schema, instance, validator)

    if error.validator == "additionalProperties":
        unknown = [key for key in instance if key not in declared]
    else:
        unknown = _unevaluated_keys(error.message, instance, declared)

    candidates = sorted(key for key in declared if key not in instance)
    for key in unknown:
        mark = document.source.key_mark((*path, key)) or document.source.value_mark(path)
        yield Diagnostic(f"unknown key {_show(key)}", mark, path, _did_you_mean(key, candidates))


def _declared_keys(schema: Any, instance: Mapping[str, Any], validator: Validator) -> set[str]:
    """Return the keys that ``schema`` declares for ``instance``, fragments included.

    The fragment of the selected type counts. When no fragment is selected (the
    selector is missing or unknown, which is reported on its own), the keys of every
    fragment count, so that options of a mistyped type are not reported as unknown too.
    ``patternProperties`` matches count; keys behind a ``$ref`` inside a fragment do not.
    """
    if not isinstance(schema, Mapping):
        return set(instance)

    declared = set(schema.get("properties", {}))
    for pattern in schema.get("patternProperties", {}):
        declared.update(key for key in instance if re.search(pattern, key))

    branches = [b for b in schema.get("allOf", []) if isinstance(b, Mapping) and "if" in b]
    selected = [b for b in branches if validator.evolve(schema=b["if"]).is_valid(instance)]
    for branch in selected or branches:
        then = branch.get("then")
        if isinstance(then, Mapping):
            declared.update(then.get("properties", {}))
    return declared


_UNEVALUATED = re.compile(
    r"Unevaluated properties are not allowed \((.*) (?:was|were) unexpected\)"
)


def _unevaluated_keys(message: str, instance: Mapping[str, Any], declared: set[str]) -> list[str]:
    """Return the unknown keys that jsonschema lists in an unevaluatedProperties message.

    jsonschema also lists declared keys when the fragment that declares them failed
    for another reason, because a failed subschema evaluates nothing. Those keys are
    dropped here: the other error is reported.
    """
    # NOTE: jsonschema 4.x gives the keys only inside the message text, as reprs.
    # If that text changes, every undeclared key of the mapping is reported instead.
    match = _UNEVALUATED.fullmatch(message)
    listed: list[Any] = list(instance)
    if match is not None:
        try:
            listed = ast.literal_eval(f"[{match.group(1)}]")
        except (ValueError, SyntaxError):
            listed = list(instance)
    return [key for key in listed if key in instance and key not in declared]


def _duplicate_item(error: ValidationError, path: DocPath, document: Document) -> Diagnostic:
    items = error.instance if isinstance(error.instance, list) else []
    seen: set[str] = set()
    for index, item in enumerate(items):
        fingerprint = json.dumps(item, sort_keys=True, default=repr)
        if fingerprint in seen:
            mark = document.source.value_mark((*path, index))
            return Diagnostic(f"{_show(item)} appears more than once", mark, path)
        seen.add(fingerprint)
    return Diagnostic("contains duplicate items", document.source.value_mark(path), path)


def _value_message(error: ValidationError) -> tuple[str, str | None]:
    """Return the message and hint for an error about one value."""
    keyword = error.validator
    value = error.validator_value
    instance = error.instance

    if keyword == "type":
        return _type_message(error)
    if keyword == "enum":
        return _enum_message(instance, value)
    if keyword == "const":
        return f"must be {_show(value)}, got {_show(instance)}", None
    if keyword == "pattern":
        return _pattern_message(instance, value), None
    if keyword in ("oneOf", "anyOf"):
        return _alternatives_message(error)
    return _bounds_message(error) or (error.message, None)


def _type_message(error: ValidationError) -> tuple[str, str | None]:
    expected = _expected_types(error)
    names = [_TYPE_NAMES.get(name, name) for name in expected]
    message = f"expected {_with_article(_join(names, 'or'))}, got {_describe_type(error.instance)}"

    hint = None
    if "string" in expected and (error.instance is None or isinstance(error.instance, bool)):
        hint = f'quote the value: "{_show(error.instance)}"'
    return message, hint


def _expected_types(error: ValidationError) -> list[str]:
    value = error.validator_value
    if isinstance(value, str):
        return [value]
    return [name for name in value if isinstance(name, str)] if isinstance(value, list) else []


def _enum_message(instance: Any, allowed: Any) -> tuple[str, str | None]:
    allowed = list(allowed)
    if not allowed:
        return f"{_show(instance)} is not registered by any loaded plugin", None

    message = f"{_show(instance)} is not one of {', '.join(_show(item) for item in allowed)}"
    if not isinstance(instance, str):
        return message, None
    return message, _did_you_mean(instance, [item for item in allowed if isinstance(item, str)])


#: Patterns of the core schema and what they mean, for messages.
_PATTERN_HELP = {
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": (
        "name",
        "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
    "^[A-Za-z_][A-Za-z0-9_]*$": (
        "variable name",
        "use letters, digits and '_', starting with a letter or '_'",
    ),
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$": (
        "module name",
        "use a Python module name such as shipline_nginx or company.hooks",
    ),
    DURATION_PATTERN: ("duration", DURATION_HELP),
}


def _pattern_message(instance: Any, pattern: Any) -> str:
    known = _PATTERN_HELP.get(pattern)
    if known is None:
        return f"{_show(instance)} does not match the pattern {pattern}"
    noun, help_text = known
    return f"{_show(instance)} is not a valid {noun}: {help_text}"


def _alternatives_message(error: ValidationError) -> tuple[str, str | None]:
    keys = _exactly_one_keys(error)
    if not keys:
        return "matches more than one of the allowed forms", None

    title = error.schema.get("title", "") if isinstance(error.schema, Mapping) else ""
    subject = f"{_with_article(title.lower())} needs" if title else "needs"
    present = [key for key in keys if isinstance(error.instance, Mapping) and key in error.instance]
    found = _join([_show(key) for key in present], "and") if present else "none"
    return f"{subject} exactly one of {_join([_show(key) for key in keys], 'or')}", f"found {found}"


def _exactly_one_keys(error: ValidationError) -> list[str]:
    """Return K1..Kn if the error is a ``oneOf: [{required: [K1]}, ...]``; else []."""
    if error.validator != "oneOf" or not isinstance(error.validator_value, list):
        return []
    keys = []
    for branch in error.validator_value:
        required = branch.get("required") if isinstance(branch, Mapping) else None
        if not isinstance(required, list) or len(branch) != 1 or len(required) != 1:
            return []
        keys.append(required[0])
    return keys


def _bounds_message(error: ValidationError) -> tuple[str, str | None] | None:
    keyword = error.validator
    limit = error.validator_value
    instance = error.instance
    messages = {
        "minimum": f"must be {limit} or more, got {_show(instance)}",
        "exclusiveMinimum": f"must be more than {limit}, got {_show(instance)}",
        "maximum": f"must be {limit} or less, got {_show(instance)}",
        "exclusiveMaximum": f"must be less than {limit}, got {_show(instance)}",
        "multipleOf": f"must be a multiple of {limit}, got {_show(instance)}",
    }
    if keyword in messages:
        return messages[keyword], None

    sized = {
        "minItems": ("at least", "item"),
        "maxItems": ("at most", "item"),
        "minLength": ("at least", "character"),
        "maxLength": ("at most", "character"),
        "minProperties": ("at least", "key"),
        "maxProperties": ("at most", "key"),
    }
    if keyword not in sized or not isinstance(limit, int):
        return None
    if keyword in ("minItems", "minLength", "minProperties") and limit == 1:
        return "must not be empty", None
    bound, unit = sized[keyword]
    size = len(instance) if hasattr(instance, "__len__") else 0
    return f"must contain {bound} {_count(limit, unit)}, got {size}", None


# -- wording helpers ---------------------------------------------------------------------

#: JSON Schema type names as YAML users know them.
_TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "null": "null",
}


def _describe_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    """Format a value for a message the way YAML users read it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return repr(value)
    return _describe_type(value)


def _with_article(phrase: str) -> str:
    if not phrase or phrase.startswith("null"):
        return phrase
    article = "an" if phrase[0] in "aeiou" else "a"
    return f"{article} {phrase}"


def _join(items: Sequence[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _join_quoted(items: Sequence[str], conjunction: str) -> str:
    return _join([repr(item) for item in items], conjunction)


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def _did_you_mean(word: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f"did you mean {_show(close[0])}?" if close else None


# -- fast validity check -----------------------------------------------------------------
#
# jsonschema applies every keyword through a generic descent that costs microseconds.
# On the 2,000-stage pipeline of tests/test_schema.py, jsonschema 4.26 took 1.4 s and
# validate() about 0.08 s (median of 15 runs, 2-core AMD EPYC virtual machine). Most
# documents are valid, so validate() first runs a check compiled from the schema into
# plain closures, and runs jsonschema only when that check fails, to produce messages.
# The check applies the draft 2020-12 keywords with jsonschema's rules: a boolean is not
# a number, 1 equals 1.0, 2.0 is an integer, `format` only annotates, `pattern` uses
# re.search. A schema with any other keyword that jsonschema asserts gets no fast check.

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
_JSONSCHEMA_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)


class _UnsupportedSchemaError(Exception):
    """The schema uses a keyword or reference that the fast check does not implement."""


class _FastCheck:
    """The compiled check of a schema; compiles the checks of its subschemas on request."""

    def __init__(self, compiler: _FastCheckCompiler, check: _Check) -> None:
        self._compiler = compiler
        self.check = check

    def check_for(self, subschema: Any) -> _Check:
        """Return the check of ``subschema``, an object or boolean inside the schema."""
        return self._compiler.compile(subschema, collect=False)

    def resolve(self, reference: str) -> Any:
        return self._compiler.resolve(reference)


def _compile_fast_check(schema: Mapping[str, Any]) -> _FastCheck | None:
    """Return the fast check of ``schema``, or None if it needs jsonschema itself."""
    compiler = _FastCheckCompiler(schema)
    try:
        check = compiler.compile(schema, collect=False)
    except _UnsupportedSchemaError as exc:
        logger.debug("schema validated by jsonschema only: %s", exc)
        return None
    return _FastCheck(compiler, check)


def _skipping_validator(fast: _FastCheck, schema: Mapping[str, Any]) -> Validator:
    """Return a jsonschema validator that skips the values the fast check accepts.

    Only an invalid document reaches jsonschema, and in a long list of stages most
    items are usually valid. ``items`` and ``properties`` descend only into the values
    whose subschema's fast check fails, so the errors are the same, found sooner.
    ``unevaluatedProperties`` is not affected: jsonschema finds evaluated keys by
    reading the schema, not by calling these keyword functions.
    """
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
        unsupported = (schema.keys() & _JSONSCHEMA_KEYWORDS) - _FAST_KEYWORDS
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
        then = self.compile(schema["then"], collect=collect) if "then" in schema else None
        otherwise = self.compile(schema["else"], collect=collect) if "else" in schema else None
        return _if_then_else(condition, then, otherwise, collect=collect)

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


def _is_number(value: Any) -> bool:
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
    "number": _is_number,
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
        if not _is_number(value):
            return True
        if isinstance(divisor, float):
            quotient = value / divisor
            try:
                return bool(int(quotient) == quotient)
            except OverflowError:
                return (Fraction(value) / Fraction(divisor)).denominator == 1
        return not value % divisor

    return check


def _assert_pattern(pattern: Any, schema: Mapping[str, Any]) -> _Assertion:
    regex = re.compile(pattern)
    return lambda value: not isinstance(value, str) or regex.search(value) is not None


def _number_bound(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], _Assertion]:
    def make(limit: Any, schema: Mapping[str, Any]) -> _Assertion:
        return lambda value: not _is_number(value) or compare(value, limit)

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
