"""Policy files: rules in CEL that a compiled plan must meet before it may run.

A policy file is YAML, validated against ``schemas/policy.schema.json`` with the same
positioned errors as a pipeline file::

    version: 1
    rules:
      - name: production-is-progressive
        when: stage.environment == "production"
        check: stage.steps.all(s, s.kind != "deploy" || s.strategy in ["canary", "blue-green"])
        message: production must use canary or blue-green

A rule of scope ``stage`` (the default) is checked once per stage that its ``when``
selects, with the CEL variables ``plan`` (:func:`pipeline.policyview.plan_view`) and
``stage`` (one of ``plan.stages``). A rule of scope ``plan`` is checked once, with
``plan`` only. Expressions run in cel-python's interpreter (:mod:`pipeline.cel`), never
through ``eval``. Every command imports this module at start-up for ``--policy``, so
the CEL wrapper, the loader and the plan view are imported only to check a policy.

A ``when`` or ``check`` that fails to evaluate, or gives something other than a boolean,
makes the policy invalid (exit 2), because a rule that cannot be checked must not pass.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.errors import PipelineError, ShiplineError, UsageError
from pipeline.exitcodes import ExitCode

if TYPE_CHECKING:
    from pipeline.cel import Activation, Expression
    from pipeline.loader import Document
    from pipeline.plan import Plan

logger = logging.getLogger("shipline")

SCHEMA_FILE = "policy.schema.json"


@dataclass(frozen=True)
class Rule:
    """One compiled rule of a policy file."""

    name: str
    message: str
    #: ``stage`` or ``plan``.
    scope: str
    check: Expression
    when: Expression | None
    #: Position of the rule in its file.
    mark: Mark | None
    #: Positions of its ``check`` and ``when`` values, for evaluation errors.
    check_mark: Mark | None
    when_mark: Mark | None


@dataclass(frozen=True)
class Policy:
    """The rules of one policy file, in file order."""

    display_name: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Violation:
    """A rule whose check is false, for one stage or for the whole plan."""

    rule: Rule
    #: ``None`` for a rule of scope ``plan``.
    stage: str | None

    def __str__(self) -> str:
        where = f"{self.rule.mark}: " if self.rule.mark is not None else ""
        scope = f"stage '{self.stage}'" if self.stage is not None else "the plan"
        return f"{where}rule '{self.rule.name}' fails for {scope}: {self.rule.message}"


class PolicyViolated(ShiplineError):
    """The plan breaks one or more policy rules.

    ``exit_code`` is 2 (invalid) for ``shipline validate`` and 3 (blocked) for
    ``shipline plan`` and ``shipline run``.
    """

    def __init__(self, violations: Sequence[Violation], exit_code: ExitCode) -> None:
        self.violations = tuple(violations)
        self.exit_code = exit_code
        lines = "\n".join(f"  {violation}" for violation in self.violations)
        super().__init__(f"the plan breaks the policy ({len(self.violations)} violation(s)):\n"
                         f"{lines}")


# -- loading ------------------------------------------------------------------------------


def load_policy(path: Path, referrer: str) -> Policy:
    """Load, validate and compile the policy file at ``path``.

    ``referrer`` names where the path came from (``--policy`` or the pipeline file), for
    a file that does not exist. Raises UsageError for a file that cannot be read and
    PipelineError with positioned diagnostics for invalid content, CEL syntax errors
    included.
    """
    from pipeline.loader import load_file
    from pipeline.schema import load_bundled_schema, validate

    if not path.exists():
        raise UsageError(f"{path}: policy file not found (named by {referrer})")
    document = load_file(path, kind="policy")
    validate(document, load_bundled_schema(SCHEMA_FILE))

    diagnostics: list[Diagnostic] = []
    rules = []
    first_line: dict[str, int] = {}
    for index, raw in enumerate(document.data["rules"]):
        rule = _compile_rule(document, index, raw, diagnostics)
        if rule is None:
            continue
        if rule.name in first_line:
            diagnostics.append(Diagnostic(
                f"duplicate rule name '{rule.name}' (first used on line "
                f"{first_line[rule.name]})",
                document.source.value_mark(("rules", index, "name")),
                ("rules", index, "name"),
            ))
        first_line.setdefault(rule.name, rule.mark.line if rule.mark else 0)
        rules.append(rule)

    if diagnostics:
        raise PipelineError(diagnostics)
    logger.debug("loaded policy %s: %d rule(s)", document.display_name, len(rules))
    return Policy(document.display_name, tuple(rules))


def _compile_rule(
    document: Document, index: int, raw: dict[str, Any], diagnostics: list[Diagnostic]
) -> Rule | None:
    source = document.source
    path: DocPath = ("rules", index)
    check = _compile(document, (*path, "check"), raw["check"], diagnostics)
    when = None
    if "when" in raw:
        when = _compile(document, (*path, "when"), raw["when"], diagnostics)
        if when is None:
            return None
    if check is None:
        return None

    return Rule(
        name=raw["name"],
        message=raw["message"],
        scope=raw.get("scope", "stage"),
        check=check,
        when=when,
        mark=source.value_mark(path),
        check_mark=source.value_mark((*path, "check")),
        when_mark=source.value_mark((*path, "when")) if when is not None else None,
    )


def _compile(
    document: Document, path: DocPath, text: str, diagnostics: list[Diagnostic]
) -> Expression | None:
    from pipeline.cel import CelError, compile_expression

    try:
        return compile_expression(text)
    except CelError as error:
        diagnostics.append(Diagnostic(str(error), document.source.value_mark(path), path))
        return None


# -- evaluation ---------------------------------------------------------------------------


def evaluate_policy(policy: Policy, plan: Plan) -> list[Violation]:
    """Check every rule of ``policy`` against ``plan`` and return the violations.

    Raises PipelineError, pointing at each rule's expression, when expressions fail
    to evaluate or give something other than a boolean. Every rule is tried first, so
    the error lists all such rules, each once: a rule whose expression fails for one
    stage is not tried on the later stages, where it would most likely fail the same
    way.
    """
    from pipeline.cel import prepare
    from pipeline.policyview import plan_view

    view = plan_view(plan)
    whole_plan = prepare({"plan": view})
    violations: list[Violation] = []
    problems: list[Diagnostic] = []
    for rule in policy.rules:
        try:
            violations += _rule_violations(rule, view, whole_plan)
        except _RuleError as error:
            problems.append(error.diagnostic)

    if problems:
        raise PipelineError(problems)
    return violations


def _rule_violations(
    rule: Rule, view: Mapping[str, Any], whole_plan: Activation,
) -> list[Violation]:
    """Return the violations of one rule: one for the plan, or one per stage it fails."""
    from pipeline.cel import Activation, prepare

    if rule.scope == "plan":
        return [] if _holds(rule, whole_plan, None) else [Violation(rule, None)]

    violations = []
    for stage in view["stages"]:
        activation = Activation({**whole_plan.values, **prepare({"stage": stage}).values})
        if not _holds(rule, activation, stage["name"]):
            violations.append(Violation(rule, stage["name"]))
    return violations


class _RuleError(Exception):
    """A rule's expression could not be evaluated; carries the diagnostic to report."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _holds(rule: Rule, activation: Activation, stage: str | None) -> bool:
    """Tell whether ``rule`` holds: its ``when`` is false or its ``check`` is true."""
    if rule.when is not None and not _evaluate(rule, rule.when, rule.when_mark, activation,
                                               stage):
        return True
    return _evaluate(rule, rule.check, rule.check_mark, activation, stage)


def _evaluate(
    rule: Rule, expression: Expression, mark: Mark | None, activation: Activation,
    stage: str | None,
) -> bool:
    from pipeline.cel import CelError, evaluate_bool

    try:
        return evaluate_bool(expression, activation)
    except CelError as error:
        scope = f"stage '{stage}'" if stage is not None else "the plan"
        raise _RuleError(Diagnostic(
            f"rule '{rule.name}' cannot be checked for {scope}: {error}", mark,
        )) from None


# -- the commands' entry point ------------------------------------------------------------


def add_policy_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--policy FILE`` to the parser of ``validate``, ``plan`` or ``run``."""
    parser.add_argument(
        "--policy", action="append", default=[], metavar="FILE",
        help="check the plan against the policy rules in FILE, in addition to the files "
        "that 'policy:' names; may be given more than once",
    )


def policy_paths(plan: Plan, extra: Iterable[str]) -> list[tuple[Path, str]]:
    """Return each policy file to apply, with where it was named, without repeats.

    ``extra`` are ``--policy`` values, relative to the working directory. The plan's
    own files come first.
    """
    named = [(path, f"'policy:' in {plan.file}") for path in plan.policy_files]
    named += [(Path(value), "--policy") for value in extra]
    seen: set[Path] = set()
    unique = []
    for path, referrer in named:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, referrer))
    return unique


def enforce(plan: Plan, extra: Iterable[str], exit_code: ExitCode) -> None:
    """Check every policy file that applies to ``plan``; raise PolicyViolated on violations.

    ``exit_code`` is the code of a violation for the calling command.
    """
    violations: list[Violation] = []
    problems: list[Diagnostic] = []
    paths = policy_paths(plan, extra)
    for path, referrer in paths:
        policy = load_policy(path, referrer)
        try:
            violations.extend(evaluate_policy(policy, plan))
        except PipelineError as error:
            problems.extend(error.diagnostics)

    if problems:
        raise PipelineError(problems)
    if violations:
        raise PolicyViolated(violations, exit_code)
    if paths:
        logger.info("the plan meets %d policy file(s)", len(paths))
