"""``environments.<name>.protect``: who may deploy to an environment, from where and when.

Each key of a ``protect`` mapping is one rule, and every rule must allow the run:

- ``branches`` and ``tags``: glob patterns (:mod:`pipeline.refglob`) of the refs that may
  deploy. With either key set, the run must be on a branch that matches ``branches``
  or a tag that matches ``tags``. A run on any other ref, such as a pull request's
  merge ref, is denied.
- ``actors`` and ``groups``: the CI user who started the run must be listed under
  ``actors`` or be a member of a listed group (top-level ``groups:``). Logins compare
  case-insensitively, as GitHub and GitLab treat them.
- ``protected_ref: true``: the CI must report the ref as protected.
- ``deny_events``: CI events that may not deploy, as the CI names them, plus ``fork``
  for a pull or merge request from another repository.

The facts come from :mod:`pipeline.identity`. A fact the CI did not provide denies
the rule that needs it, and the denial names the variables that would provide it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode
from pipeline.identity import RunIdentity, read_identity
from pipeline.plan import Plan
from pipeline.refglob import matches_any

logger = logging.getLogger("shipline")

#: The ``deny_events`` entry for a pull or merge request from another repository.
FORK_EVENT = "fork"


@dataclass(frozen=True)
class Denial:
    """One protect rule that denies the run a deploy to one environment."""

    environment: str
    #: The key of the rule under ``protect``, such as ``branches``.
    rule: str
    reason: str

    def __str__(self) -> str:
        return (
            f"deploying to environment '{self.environment}' is denied by its protect rule "
            f"'{self.rule}': {self.reason}"
        )


class AccessDenied(ShiplineError):
    """Protect rules deny the run; nothing ran. Exit code 3 (blocked)."""

    exit_code = ExitCode.BLOCKED

    def __init__(self, denials: Sequence[Denial]) -> None:
        self.denials = tuple(denials)
        lines = "\n".join(f"  {denial}" for denial in self.denials)
        super().__init__(f"the protect rules deny this run ({len(self.denials)} denial(s)):\n"
                         f"{lines}")


def check_plan(plan: Plan, identity: RunIdentity) -> list[Denial]:
    """Check the protect rules of every environment that a stage of ``plan`` names.

    Returns every denial, in the order the stages name the environments. Each
    environment is checked once, however many stages name it.
    """
    denials: list[Denial] = []
    seen: set[str] = set()
    for stage in plan.stages:
        name = stage.environment
        if name is None or name in seen or name not in plan.environments:
            continue
        seen.add(name)
        protect = plan.environments[name].options.get("protect")
        if protect:
            denials.extend(check_environment(name, protect, plan.groups, identity))
    return denials


def check_environment(
    environment: str,
    protect: Mapping[str, Any],
    groups: Mapping[str, Iterable[str]],
    identity: RunIdentity,
) -> list[Denial]:
    """Return the denials of one environment's ``protect`` rules for ``identity``."""
    denials = [
        *_check_events(protect, identity),
        *_check_ref(protect, identity),
        *_check_protected(protect, identity),
        *_check_actor(protect, groups, identity),
    ]
    return [Denial(environment, rule, reason) for rule, reason in denials]


def _missing(identity: RunIdentity, fact: str) -> str:
    """Return the end of a denial for a fact that the CI did not provide."""
    variables = identity.sources.get(fact, "")
    if identity.system is None:
        return (
            f"it needs {variables}, and this run is outside a supported CI "
            f"(neither GITHUB_ACTIONS nor GITLAB_CI is 'true')"
        )
    return f"it needs {variables}, which this CI job does not set"


def _check_events(protect: Mapping[str, Any], identity: RunIdentity) -> list[tuple[str, str]]:
    denied = list(protect.get("deny_events") or ())
    if not denied:
        return []

    rule = "deny_events"
    plain_events = [event for event in denied if event != FORK_EVENT]
    if plain_events:
        if identity.event is None:
            return [(rule, f"the run's event is unknown; {_missing(identity, 'event')}")]
        if identity.event in plain_events:
            return [(rule, f"runs triggered by the event '{identity.event}' may not deploy")]

    if FORK_EVENT in denied:
        if identity.from_fork is None:
            unknown = "cannot tell whether the run is for a pull or merge request from a fork"
            if identity.fork_problem:
                return [(rule, f"{unknown}: {identity.fork_problem}")]
            return [(rule, f"{unknown}; {_missing(identity, 'fork')}")]
        if identity.from_fork:
            return [(rule, "runs for a pull or merge request from a fork may not deploy")]
    return []


def _check_ref(protect: Mapping[str, Any], identity: RunIdentity) -> list[tuple[str, str]]:
    branches = protect.get("branches")
    tags = protect.get("tags")
    if branches is None and tags is None:
        return []

    rule = "branches" if branches is not None else "tags"
    allowed = _allowed_refs(branches, tags)
    if identity.ref_type is None or identity.ref_name is None:
        return [(rule, f"the run's branch or tag is unknown; {_missing(identity, 'ref')}")]

    if identity.ref_type == "branch":
        if branches is not None and matches_any(identity.ref_name, branches):
            return []
        return [(rule, f"branch '{identity.ref_name}' is not allowed ({allowed})")]
    if identity.ref_type == "tag":
        if tags is not None and matches_any(identity.ref_name, tags):
            return []
        return [("tags" if tags is not None else rule,
                 f"tag '{identity.ref_name}' is not allowed ({allowed})")]
    return [(rule, f"the ref '{identity.ref_name}' is neither a branch nor a tag ({allowed})")]


def _allowed_refs(branches: Sequence[str] | None, tags: Sequence[str] | None) -> str:
    parts = []
    if branches is not None:
        parts.append("branches: " + (", ".join(branches) or "none"))
    if tags is not None:
        parts.append("tags: " + (", ".join(tags) or "none"))
    return "allowed " + "; ".join(parts)


def _check_protected(protect: Mapping[str, Any], identity: RunIdentity) -> list[tuple[str, str]]:
    if protect.get("protected_ref") is not True:
        return []

    rule = "protected_ref"
    if identity.ref_protected is None:
        return [(rule, f"whether the ref is protected is unknown; "
                 f"{_missing(identity, 'protected')}")]
    if not identity.ref_protected:
        where = f"'{identity.ref_name}'" if identity.ref_name else "of this run"
        return [(rule, f"the ref {where} is not protected")]
    return []


def _check_actor(
    protect: Mapping[str, Any], groups: Mapping[str, Iterable[str]], identity: RunIdentity
) -> list[tuple[str, str]]:
    actors = protect.get("actors")
    group_names = protect.get("groups")
    if actors is None and group_names is None:
        return []

    rule = " and ".join(key for key in ("actors", "groups") if protect.get(key) is not None)
    if identity.actor is None:
        return [(rule, f"the user who started the run is unknown; "
                 f"{_missing(identity, 'actor')}")]

    allowed = {actor.casefold() for actor in actors or ()}
    for group in group_names or ():
        allowed.update(member.casefold() for member in groups.get(group, ()))
    if identity.actor.casefold() in allowed:
        return []

    listed = [*(f"'{actor}'" for actor in actors or ()),
              *(f"group '{group}'" for group in group_names or ())]
    return [(rule, f"user '{identity.actor}' is not allowed (allowed: "
             f"{', '.join(listed) or 'nobody'})")]


def enforce(plan: Plan, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`AccessDenied` with every denial of ``plan``'s protect rules.

    The CI facts are read from ``environ`` (default ``os.environ``) only when a stage
    names an environment with rules, so a pipeline without rules never reads the
    GitHub event file.
    """
    named = {stage.environment for stage in plan.stages if stage.environment is not None}
    if not any(
        plan.environments[name].options.get("protect")
        for name in named if name in plan.environments
    ):
        return

    identity = read_identity(environ)
    denials = check_plan(plan, identity)
    if denials:
        raise AccessDenied(denials)
    logger.info("protect rules allow this run (actor %s, ref %s)",
                identity.actor or "unknown", identity.ref_name or "unknown")
