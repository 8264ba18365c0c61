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
(see :mod:`pipeline.schemacheck`). jsonschema runs only on an invalid document, and
:mod:`pipeline.schemamessages` words each of its errors as a diagnostic. jsonschema is
imported only then, and to check a plugin's fragment against the metaschema, because
its import was the largest single import of shipline's start-up (see
docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.errors import PipelineError, PluginError
from pipeline.schemacheck import FastCheck, compile_fast_check, is_number, skipping_validator
from pipeline.schemamessages import (
    alternative_keys,
    alternative_types,
    describe,
    expected_types,
    is_key_check,
    join_quoted,
)

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
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
    copied: dict[str, Any] = plain_copy(_load_core())
    return copied


def plain_copy(value: Any) -> Any:
    """Copy JSON-like data: mappings become dicts and tuples lists, other values are shared.

    The core schema is copied for every schema built; ``copy.deepcopy`` took three
    times as long, because it records every object it copies.
    """
    if isinstance(value, Mapping):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_copy(item) for item in value]
    return value


@cache
def _load_core() -> dict[str, Any]:
    return load_bundled_schema(_CORE_FILE)


@cache
def load_bundled_schema(file_name: str) -> dict[str, Any]:
    """Return a schema shipped with shipline, such as ``policy.schema.json``; do not modify it.

    Raises FileNotFoundError when the installation lacks the file.
    """
    # In a wheel the file is packaged as pipeline/schemas/ (a hatch force-include);
    # in a source checkout it is in schemas/ at the repository root.
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas" / file_name, here.parent / "schemas" / file_name):
        if candidate.is_file():
            loaded: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return loaded
    raise FileNotFoundError(f"{file_name} is missing from {here} and {here.parent / 'schemas'}")


def build_schema(
    fragments: Sequence[StepSchema], *, unchecked_plugins: Collection[str] = ()
) -> dict[str, Any]:
    """Return the core schema with every fragment merged in.

    For each kind, the selector key accepts exactly the registered types (an ``enum``,
    sorted), and each fragment applies through ``allOf: [{if: <selector is T>, then:
    <fragment>}]``. ``unevaluatedProperties: false`` on the core object keeps rejecting
    keys that neither the core nor the selected fragment declares. A fragment's
    ``$defs`` move to the root ``$defs`` as ``<kind>.<type>.<name>``.

    Each fragment is checked against the draft 2020-12 metaschema, except those whose
    ``plugin`` is in ``unchecked_plugins``. That check takes most of the time of this
    function. :func:`pipeline.planning.full_schema` passes the built-in plugins here,
    because their fragments are fixed and a test checks them.

    Raises PluginError, naming the plugin, for an unknown kind, an empty type, two
    plugins registering the same kind and type, or a checked fragment that is not a
    valid JSON Schema.
    """
    schema = core_schema()
    registered = _index_fragments(fragments)

    for kind, (selector, def_names) in _SELECTORS.items():
        options = {
            type_name: _prepare_fragment(
                fragment, schema["$defs"], check=fragment.plugin not in unchecked_plugins
            )
            for type_name, fragment in sorted(registered.get(kind, {}).items())
        }
        for index, def_name in enumerate(def_names):
            # The prepared fragments are copies already; a second definition of the
            # same kind gets copies of its own, so that no subschema is shared.
            _attach(schema["$defs"][def_name], selector, options, copy=index > 0)
    return schema


def _index_fragments(fragments: Sequence[StepSchema]) -> dict[str, dict[str, StepSchema]]:
    by_kind: dict[str, dict[str, StepSchema]] = {}
    for fragment in fragments:
        if fragment.kind not in KINDS:
            raise PluginError(
                f"{_plugin_label(fragment)} registers a schema of unknown kind "
                f"{fragment.kind!r}: expected one of {join_quoted(KINDS, 'or')}"
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


def _prepare_fragment(
    fragment: StepSchema, root_defs: dict[str, Any], *, check: bool
) -> dict[str, Any]:
    """Copy the fragment, move its ``$defs`` into ``root_defs`` and return the rest.

    With ``check``, the fragment is first checked against the metaschema.
    """
    noun = f"{_KIND_NOUNS[fragment.kind]} {fragment.type!r}"
    label = f"{_plugin_label(fragment)} registers an invalid schema for the {noun}"
    try:
        plain = _to_json(fragment.schema)
    except TypeError as exc:
        raise PluginError(f"{label}: {exc}") from exc
    if not isinstance(plain, dict):
        raise PluginError(f"{label}: expected a JSON Schema object, got {type(plain).__name__}")

    if check:
        _check_once(plain, label)

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


def _check_once(fragment: dict[str, Any], label: str) -> None:
    """Check ``fragment`` against the metaschema unless it passed before (see
    :mod:`pipeline.fragmentcache`), and record it when it passes."""
    from pipeline import fragmentcache

    key = fragmentcache.fingerprint(fragment)
    if fragmentcache.is_checked(key):
        return
    _check_metaschema(fragment, label)
    fragmentcache.remember(key)


def _check_metaschema(fragment: dict[str, Any], label: str) -> None:
    """Raise PluginError, starting with ``label``, if ``fragment`` breaks the metaschema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(fragment)
    except SchemaError as exc:
        raise PluginError(f"{label}: {exc.message} (at {exc.json_path})") from exc


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


def _attach(
    definition: dict[str, Any], selector: str, options: Mapping[str, Any], *, copy: bool
) -> None:
    """Restrict ``selector`` to the registered types and add one if/then per type, with
    a copy of each fragment if ``copy``."""
    definition["properties"][selector]["enum"] = list(options)
    branches = [
        {
            "if": {"properties": {selector: {"const": type_name}}, "required": [selector]},
            "then": plain_copy(fragment) if copy else fragment,
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
        for diagnostic in describe(failure, document, compiled.validator):
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
    """A schema with its fast check, if it has one, and its jsonschema validator."""

    schema: Mapping[str, Any]
    fast: FastCheck | None

    @cached_property
    def validator(self) -> Validator:
        """The jsonschema validator, created on first use: a valid document needs none."""
        from jsonschema import Draft202012Validator

        if self.fast is None:
            return Draft202012Validator(self.schema)
        return skipping_validator(self.fast, self.schema)


#: Compiled schemas by ``id`` of the schema. Each entry keeps its schema alive, so no
#: other object can get the same id while the entry is cached.
_compiled_schemas: dict[int, _CompiledSchema] = {}
_MAX_COMPILED_SCHEMAS = 8


def _compiled(schema: Mapping[str, Any]) -> _CompiledSchema:
    cached = _compiled_schemas.get(id(schema))
    if cached is not None and cached.schema is schema:
        return cached

    compiled = _CompiledSchema(schema, compile_fast_check(schema))
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
        if error.validator == "type" and not is_key_check(error)
    }
    return [
        error
        for error in chosen
        if error.validator == "type"
        or is_key_check(error)
        or tuple(error.absolute_path) not in wrong_type
    ]


def _most_relevant(error: ValidationError) -> ValidationError:
    from jsonschema.exceptions import relevance

    # jsonschema's best_match stops at a oneOf when its sub-errors are equally
    # relevant, and going on to the first of them gives a concrete message instead.
    # Errors of a branch whose type fits the value come first, so a mapping given to "a
    # number or a mapping with 'duration'" gets the error about its keys. Among those an
    # unknown key comes first, because a misspelt key also leaves a required one out.
    while error.context and not alternative_keys(error):
        fitting = [sub for sub in error.context if _branch_fits(sub)]
        if not fitting and alternative_types(error):
            # No form accepts a value of this type, so the message lists the types.
            return error
        error = min(fitting or error.context,
                    key=lambda sub: (sub.validator not in _UNKNOWN_KEY_KEYWORDS, relevance(sub)))
    return error


#: The keywords whose errors name a key that the schema does not allow.
_UNKNOWN_KEY_KEYWORDS = ("additionalProperties", "unevaluatedProperties")


def _branch_fits(error: ValidationError) -> bool:
    """Tell whether the oneOf or anyOf branch that ``error`` comes from accepts the
    type of the value, as far as its ``type`` keywords tell."""
    parent = error.parent
    branches = parent.validator_value if parent is not None else None
    index = error.relative_schema_path[0] if error.relative_schema_path else None
    if not isinstance(branches, list) or not isinstance(index, int) or index >= len(branches):
        return True
    return _accepts_type(branches[index], parent.instance if parent is not None else None)


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda value: isinstance(value, Mapping),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "integer": lambda value: is_number(value) and float(value).is_integer(),
    "number": is_number,
}


def _accepts_type(schema: Any, value: Any) -> bool:
    """Tell whether ``schema`` may accept ``value``'s type: False only when its ``type``,
    or the ``type`` of every branch of its anyOf or oneOf, rules the type out."""
    if not isinstance(schema, Mapping):
        return True
    declared = schema.get("type")
    if declared is not None:
        names = [declared] if isinstance(declared, str) else list(declared)
        return any(_JSON_TYPES.get(name, lambda _value: True)(value) for name in names)
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            return any(_accepts_type(branch, value) for branch in branches)
    return True


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


def _replace_numbers_fast(fast: FastCheck, schema: Mapping[str, Any], document: Document) -> bool:
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
        text = document.source.plain_text(path) if is_number(value) and path else None
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


def _applicable_parts(fast: FastCheck, schema: Any, value: Any) -> Iterator[Mapping[str, Any]]:
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
        and "string" in expected_types(error)
        and isinstance(error.instance, (int, float))
        and not isinstance(error.instance, bool)
        and not is_key_check(error)
    )
