"""Variable interpolation in the strings of a pipeline document.

Syntax, in every string value (mapping keys are left alone):

- ``${NAME}`` is replaced by the value of ``NAME``.
- ``${NAME:-default}`` uses ``default`` when ``NAME`` is unset or empty, as POSIX sh
  does. The default is plain text up to the first ``}``. Inside it ``$$`` is a literal
  ``$`` and a ``${`` is an error, because references do not nest.
- ``$$`` is a literal ``$``, so ``$${NAME}`` produces the text ``${NAME}``.
- Any other ``$`` is kept as it is: ``$HOME`` stays ``$HOME``. Only the braced form is
  a reference, so shell commands in a step keep their own ``$VAR``; prefer that form
  there, because in a command template ``$${VAR}`` leaves ``{VAR}``, which the command
  target then reads as a placeholder.

``NAME`` is letters, digits and ``_``, not starting with a digit. ``${}``,
``${bad-name}``, other sh forms such as ``${NAME-x}`` and an unclosed ``${`` are
errors. A string that is exactly ``${NAME}`` stays a string: ``"${PORT}"`` gives
``"8080"``, never the number 8080.

Lookup: the environment first, then the top-level ``vars:`` mapping, so a CI variable
overrides the default written in the file. A name present in the environment wins
even when its value is empty. A ``vars:`` value is converted to text (``true`` and
``false`` for booleans, ``str`` for integers, ``repr`` for floats, the empty string for
null) and may reference other variables with the same syntax and lookup. A ``vars:``
entry is resolved only when a string uses it and the environment does not set its
name, so an unused entry may reference variables that are unset.

Secrets: the value of a variable is secret when its name is listed under
``secrets:`` or contains a word from
:data:`~pipeline.masking.SENSITIVE_NAME_WORDS`. Every secret value that a string
uses, default included, goes into the returned masker. So do the environment values of
all names listed under ``secrets:``, used or not, because plugins and commands may
read those from the environment. A listed secret that is unset is an error only when a
string uses it without a default. No diagnostic contains a value, only names and the
reference as written in the file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.errors import PipelineError
from pipeline.masking import Masker, is_sensitive_name

#: Maximum length of a chain of ``vars:`` entries that reference one another.
#: Resolution recurses once per entry, so the limit keeps a generated file far from
#: Python's recursion limit and gives a clear error instead.
MAX_VARIABLE_DEPTH = 100

#: Maximum characters of a malformed reference quoted in an error message.
_QUOTE_LIMIT = 40

_TOKEN = re.compile(r"\$(?P<kind>[${])")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)

_SYNTAX_HINT = (
    "write ${NAME} or ${NAME:-default} with a NAME of letters, digits and '_' "
    "that does not start with a digit, or $$ for a literal '$'"
)


class SupportsMarks(Protocol):
    """The part of the loader's source map that interpolation needs."""

    def value_mark(self, path: DocPath) -> Mark | None:
        """Return the position of the value at ``path``, or of its nearest known ancestor."""
        ...


@dataclass(frozen=True)
class Interpolation:
    """The result of :func:`interpolate`."""

    #: A new copy of the document data with every string interpolated.
    data: Any
    #: Every secret value found: the ones used and those of the listed secret names.
    masker: Masker
    #: Names referenced by the interpolated strings, including names that the used
    #: ``vars:`` entries reference.
    used: frozenset[str]
    #: Undefined variables that ``tolerate`` allowed, each with the path it is used at.
    #: Their references are kept as written (``${NAME}``).
    tolerated: tuple[tuple[str, DocPath], ...] = ()


def interpolate(
    data: Any,
    source: SupportsMarks,
    *,
    environ: Mapping[str, str],
    variables: Mapping[str, Any],
    secret_names: Iterable[str],
    skip: Collection[DocPath] = (("vars",),),
    tolerate: Callable[[DocPath], bool] | None = None,
) -> Interpolation:
    """Interpolate ``${NAME}`` references in every string of ``data``.

    ``variables`` is the document's ``vars:`` mapping, and a problem in one of its
    values is reported at the path ``vars.NAME``. A subtree whose path is in ``skip``
    is copied unchanged. ``data`` itself is not modified. Raises
    :class:`PipelineError` listing every problem in the document: each undefined
    variable, malformed reference and cycle among ``vars:`` entries.

    ``tolerate``, when given, is asked about each path where an undefined variable
    without a default is used. Where it returns True, the reference is kept as written
    and listed in :attr:`Interpolation.tolerated` instead of being an error. Commands
    that do not deploy use it, because they do not need deploy-time variables.
    """
    resolver = _Resolver(source, environ, variables, frozenset(secret_names), tolerate)
    resolver.register_listed_secrets()
    walker = _Walker(resolver, frozenset(tuple(path) for path in skip))
    result = walker.walk(data, ())

    if resolver.diagnostics:
        raise PipelineError(resolver.diagnostics)

    return Interpolation(result, resolver.masker, frozenset(resolver.used),
                         tuple(resolver.tolerated))


@dataclass(frozen=True)
class _Reference:
    """A well-formed ``${NAME}`` or ``${NAME:-default}`` with its default unescaped."""

    name: str
    default: str | None


@dataclass(frozen=True)
class _Walker:
    """The document copier that sends each string value to the resolver."""

    resolver: _Resolver
    skip: frozenset[DocPath]

    def walk(self, value: Any, path: DocPath) -> Any:
        if path in self.skip:
            return copy.deepcopy(value)

        if isinstance(value, str):
            return self.resolver.interpolate_string(value, path)

        if isinstance(value, Mapping):
            return {key: self.walk(item, (*path, key)) for key, item in value.items()}

        if isinstance(value, (list, tuple)):
            items = [self.walk(item, (*path, index)) for index, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)

        return value


class _Failed:
    """Marker for a ``vars:`` entry whose value has an error that is already reported."""


_FAILED: Final = _Failed()


class _Resolver:
    """The reference resolver, collecting diagnostics, used names and secret values."""

    def __init__(
        self,
        source: SupportsMarks,
        environ: Mapping[str, str],
        variables: Mapping[str, Any],
        secret_names: frozenset[str],
        tolerate: Callable[[DocPath], bool] | None = None,
    ) -> None:
        self.source = source
        self.tolerate = tolerate
        self.tolerated: list[tuple[str, DocPath]] = []
        self.environ = environ
        self.variables = variables
        self.secret_names = secret_names
        self.masker = Masker()
        self.used: set[str] = set()
        self.diagnostics: list[Diagnostic] = []
        #: Problems found so far, repeats included. A value whose resolution raised the
        #: count has failed.
        self._problem_count = 0
        self._reported: set[tuple[DocPath, str]] = set()
        self._variable_values: dict[str, str | _Failed] = {}
        self._resolving: list[str] = []

    def register_listed_secrets(self) -> None:
        for name in self.secret_names:
            value = self.environ.get(name)
            if value:
                self.masker.add(value)

    def interpolate_string(self, text: str, path: DocPath) -> str:
        """Return ``text`` with its references replaced.

        After an error the result is incomplete, but the caller raises anyway once
        :attr:`diagnostics` is not empty.
        """
        if "$" not in text:
            return text

        pieces: list[str] = []
        for part in self._parse(text, path):
            if isinstance(part, str):
                pieces.append(part)
            else:
                pieces.append(self._resolve(part, path))

        return "".join(pieces)

    def _parse(self, text: str, path: DocPath) -> list[str | _Reference]:
        """Split ``text`` into literal pieces and references, reporting malformed ones."""
        parts: list[str | _Reference] = []
        position = 0

        for token in _TOKEN.finditer(text):
            if token.start() < position:
                continue
            parts.append(text[position : token.start()])

            if token["kind"] == "$":
                parts.append("$")
                position = token.end()
                continue

            close = text.find("}", token.end())
            if close == -1:
                self._report_unclosed(text[token.start() :], path)
                return parts

            reference = self._reference(text[token.start() : close + 1], path)
            if reference is not None:
                parts.append(reference)
            position = close + 1

        parts.append(text[position:])
        return parts

    def _reference(self, written: str, path: DocPath) -> _Reference | None:
        """Parse ``written`` (``${...}``, braces included), or report it when malformed."""
        body = _BODY.fullmatch(written, 2, len(written) - 1)
        if body is None:
            self._report(path, f"invalid variable reference {_quote(written)}", _SYNTAX_HINT)
            return None

        default = body["default"]
        if default is None:
            return _Reference(body["name"], None)

        unescaped = _unescape_default(default)
        if unescaped is None:
            self._report(
                path,
                f"invalid variable reference {_quote(written)}: a default cannot contain '${{'",
                "a default is plain text, and $${ writes a literal '${'",
            )
            return None

        return _Reference(body["name"], unescaped)

    def _resolve(self, reference: _Reference, path: DocPath) -> str:
        """Return the text for ``reference``, or report it when nothing defines it."""
        name = reference.name
        value = self._lookup(name)
        if isinstance(value, _Failed):
            return ""

        if not value and reference.default is not None:
            value = reference.default

        if value is None and self.tolerate is not None and self.tolerate(path):
            self.tolerated.append((name, path))
            return f"${{{name}}}"

        if value is None:
            self._report(
                path,
                f"undefined variable '{name}'",
                f"set it in the environment or under 'vars:', or give a default with "
                f"${{{name}:-value}}",
            )
            return ""

        if value and self._is_secret(name):
            self.masker.add(value)

        return value

    def _lookup(self, name: str) -> str | _Failed | None:
        """Look ``name`` up in the environment, then in ``vars:``. ``None`` means unset."""
        self.used.add(name)

        if name in self.environ:
            return self.environ[name]

        if name in self.variables:
            return self._variable(name)

        return None

    def _variable(self, name: str) -> str | _Failed:
        """Resolve the ``vars:`` entry ``name`` once, reporting a cycle or a chain too deep."""
        known = self._variable_values.get(name)
        if known is not None:
            return known

        if name in self._resolving:
            self._report_cycle(name)
            return _FAILED

        path: DocPath = ("vars", name)
        if len(self._resolving) >= MAX_VARIABLE_DEPTH:
            self._report(
                path,
                f"variable '{name}' is nested too deeply: more than "
                f"{MAX_VARIABLE_DEPTH} 'vars:' entries reference one another in a chain",
            )
            return self._remember(name, _FAILED)

        text = self._variable_text(name, path)
        if isinstance(text, _Failed):
            return self._remember(name, text)

        self._resolving.append(name)
        problems_before = self._problem_count
        value = self.interpolate_string(text, path)
        self._resolving.pop()

        if name in self._variable_values or self._problem_count > problems_before:
            return self._remember(name, _FAILED)

        return self._remember(name, value)

    def _variable_text(self, name: str, path: DocPath) -> str | _Failed:
        """Convert the raw ``vars:`` value of ``name`` to text, or report a list or mapping."""
        raw = self.variables[name]
        text = _scalar_text(raw)
        if text is not None:
            return text

        kind = "a mapping" if isinstance(raw, Mapping) else f"a {_type_name(raw)}"
        self._report(
            path,
            f"variable '{name}' is {kind}, but only a string, number, boolean or null "
            "can be interpolated",
        )
        return _FAILED

    def _remember(self, name: str, value: str | _Failed) -> str | _Failed:
        self._variable_values[name] = value
        return value

    def _report_cycle(self, name: str) -> None:
        """Report the cycle that closes at ``name`` and mark every entry in it as failed."""
        cycle = [*self._resolving[self._resolving.index(name) :], name]
        for member in cycle:
            self._variable_values[member] = _FAILED

        if len(cycle) == 2:
            message = f"variable '{name}' references itself"
        else:
            message = "variables reference each other in a cycle: " + " -> ".join(cycle)
        self._report(("vars", name), message)

    def _report_unclosed(self, written: str, path: DocPath) -> None:
        self._report(
            path,
            f"unclosed variable reference {_quote(written)}: missing '}}'",
            "close it with '}', or write $${ for a literal '${'",
        )

    def _report(self, path: DocPath, message: str, hint: str | None = None) -> None:
        """Add a diagnostic at ``path``, once per path and message."""
        self._problem_count += 1
        if (path, message) in self._reported:
            return

        self._reported.add((path, message))
        self.diagnostics.append(Diagnostic(message, self.source.value_mark(path), path, hint))

    def _is_secret(self, name: str) -> bool:
        return name in self.secret_names or is_sensitive_name(name)


def _unescape_default(default: str) -> str | None:
    """Replace ``$$`` by ``$`` in a default, or return ``None`` when it contains ``${``."""
    pieces: list[str] = []
    position = 0

    for token in _TOKEN.finditer(default):
        if token.start() < position:
            continue
        if token["kind"] == "{":
            return None
        pieces.append(default[position : token.start()])
        pieces.append("$")
        position = token.end()

    pieces.append(default[position:])
    return "".join(pieces)


def _scalar_text(value: Any) -> str | None:
    """Convert a scalar ``vars:`` value to the text it interpolates as, else ``None``."""
    if value is None:
        return ""

    if isinstance(value, bool):
        return "true" if value else "false"

    if isinstance(value, str):
        return value

    if isinstance(value, int):
        return str(value)

    if isinstance(value, float):
        return repr(value)

    return None


def _type_name(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _quote(written: str) -> str:
    """Quote a reference as written for a message, cut to :data:`_QUOTE_LIMIT` characters."""
    if len(written) > _QUOTE_LIMIT:
        written = written[:_QUOTE_LIMIT] + "..."
    return f"'{written}'"
