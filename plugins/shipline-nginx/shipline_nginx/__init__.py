"""shipline-nginx: the ``nginx`` router, which moves traffic by rewriting an nginx upstream.

An environment uses it next to a target with two slots (``command`` with ``slots``,
or ``local``)::

    environments:
      production:
        target:
          type: command
          slots: {blue: [web-1], green: [web-2]}
          deploy: "ssh deploy@{instance} deploy-release {version}"
        router:
          type: nginx
          config: /etc/nginx/shipline/shop-upstream.conf
          upstream: shop
          servers: {web-1: "10.0.0.1:8080", web-2: "10.0.0.2:8080"}

and nginx.conf includes the file and proxies to the upstream::

    http {
        include /etc/nginx/shipline/shop-upstream.conf;
        server { listen 80; location / { proxy_pass http://shop; } }
    }

Canary weights and blue-green switches then rewrite the file, check it with
``nginx -T`` and reload nginx (see :mod:`shipline_nginx.router`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic
from pipeline.schema import StepSchema
from pipeline.target import Capability
from shipline_nginx.settings import ROUTER_TYPE, SCHEMA, NginxSettings, is_address

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Environment, Plan
    from shipline_nginx.router import NginxError, NginxRouter

__all__ = ["NginxError", "NginxRouter", "NginxSettings"]


def __getattr__(name: str) -> Any:
    # The router module is imported on first use: every shipline start imports this
    # package to read its schema, and only a run with an nginx router needs the rest.
    if name not in ("NginxError", "NginxRouter"):
        raise AttributeError(f"module 'shipline_nginx' has no attribute {name!r}")
    from shipline_nginx import router

    value = getattr(router, name)
    globals()[name] = value
    return value

_CAPABILITIES = frozenset({Capability.WEIGHTS, Capability.SLOTS})


def _is_mine(environment: Environment) -> bool:
    return environment.router is not None and environment.router.get("type") == ROUTER_TYPE


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="router", type=ROUTER_TYPE, schema=SCHEMA,
        description="Canary weights and blue-green switches through an nginx upstream "
        "file, checked with nginx -T and reloaded.",
    )]


@hookimpl
def shipline_capabilities(environment: Environment) -> frozenset[Capability] | None:
    return _CAPABILITIES if _is_mine(environment) else None


@hookimpl
def shipline_make_router(environment: Environment, context: RunContext) -> NginxRouter | None:
    if not _is_mine(environment):
        return None
    assert environment.router is not None
    settings = NginxSettings.from_options(
        environment.router, Path(context.plan.file).resolve().parent, environment.name)
    target = context.target(environment)
    from shipline_nginx.router import NginxRouter

    return NginxRouter.create(settings, target, context.cancel)


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    diagnostics = []
    for environment in plan.environments.values():
        if not _is_mine(environment):
            continue
        assert environment.router is not None
        target_type = environment.target.get("type")
        if target_type == "command":
            problems = check_command_target(environment.target, environment.router)
        elif target_type == "local":
            problems = check_local_target(environment.target, environment.router)
        else:
            continue
        for key, message, hint in problems:
            path = ("environments", environment.name, key)
            diagnostics.append(Diagnostic(message, None, path, hint))
    return diagnostics


def check_command_target(
    target: Mapping[str, Any], router: Mapping[str, Any]
) -> list[tuple[str, str, str | None]]:
    """Find what keeps an nginx router from routing to a ``command`` target's instances.

    Returns ``(key, message, hint)`` per problem, where key is ``target`` or
    ``router``: a target without slots, an instance without an address, and a
    ``servers`` entry for an instance that the target does not have.
    """
    slots = target.get("slots") or {}
    if not slots:
        return [("target", "the nginx router needs a target with two slots",
                 "list the instances of each slot under 'slots:', such as "
                 "{blue: [...], green: [...]}")]

    problems: list[tuple[str, str, str | None]] = []
    servers = router.get("servers") or {}
    instances = [instance for members in slots.values() for instance in members]
    for instance in instances:
        if instance not in servers and not is_address(instance):
            problems.append(("router", f"instance '{instance}' has no address for nginx",
                             f"add it under 'servers:' as {instance}: host:port"))
    problems.extend(check_servers(servers, instances))
    return problems


def check_local_target(
    target: Mapping[str, Any], router: Mapping[str, Any]
) -> list[tuple[str, str, str | None]]:
    """Reject ``servers`` with a ``local`` target.

    The local target starts its processes on ports it picks and gives the router their
    addresses itself. An entry would send part of the traffic to an address that no
    process of the run serves. Returns ``(key, message, hint)`` per problem, as
    :func:`check_command_target` does.
    """
    if not router.get("servers"):
        return []
    return [("router", "'servers' cannot be used with the local target, which supplies "
             "the addresses of its instances itself", "remove 'servers' from the router")]


def check_servers(
    servers: Mapping[str, Any], instances: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """Find the ``servers`` entries whose name is not one of ``instances``."""
    hint = f"use one of {', '.join(instances)}, or remove the entry"
    return [("router", f"'servers' names '{name}', which is not an instance of the target",
             hint) for name in servers if name not in instances]
