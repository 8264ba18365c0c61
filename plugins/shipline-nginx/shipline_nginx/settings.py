"""The options of an ``nginx`` router: their JSON Schema and their parsed form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.durations import DURATION_PATTERN, parse_duration

ROUTER_TYPE = "nginx"

#: ``host:port`` with a name, an IPv4 address or a bracketed IPv6 address.
ADDRESS_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}$"

#: Names nginx accepts for an upstream without quoting.
UPSTREAM_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"

#: Seconds each nginx command, and the wait for new workers after a reload, may take.
DEFAULT_TIMEOUT = 30.0

_PATH = {"type": "string", "minLength": 1}

#: JSON Schema of the router's options (besides ``type``).
SCHEMA: Mapping[str, Any] = {
    "properties": {
        "config": {
            **_PATH,
            "title": "Upstream file",
            "description": "The file this router owns and rewrites: one upstream block. "
            "Include it in the http block of nginx.conf. Relative to the pipeline file's "
            "folder.",
        },
        "upstream": {
            "title": "Upstream name",
            "description": "Name of the upstream block, used by proxy_pass in nginx.conf.",
            "type": "string", "pattern": UPSTREAM_PATTERN, "default": "shipline",
        },
        "servers": {
            "title": "Servers",
            "description": "The host:port of each instance. Without an entry, an instance "
            "name of the form host:port is its address, and the local target supplies the "
            "addresses of its processes.",
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": ADDRESS_PATTERN},
        },
        "nginx": {
            **_PATH,
            "title": "nginx binary",
            "description": "The nginx program that checks the configuration (nginx -T) and "
            "reloads it; a name is looked up in PATH.",
            "default": "nginx",
        },
        "prefix": {
            **_PATH,
            "title": "Prefix",
            "description": "Passed to nginx as -p: the prefix path of the running nginx.",
        },
        "conf": {
            **_PATH,
            "title": "Main configuration",
            "description": "Passed to nginx as -c: the nginx.conf that includes the upstream "
            "file. Relative to the pipeline file's folder.",
        },
        "reload": {
            "title": "Reload command",
            "description": "The command line, as a list of arguments run without a shell, "
            "that makes nginx load the new configuration. Default: nginx -s reload, with "
            "-p and -c when set.",
            "type": "array", "items": {"type": "string"}, "minItems": 1,
        },
        "pid": {
            **_PATH,
            "title": "PID file",
            "description": "The pid file of the nginx master. When set, a weight change or "
            "switch returns only once nginx has started workers with the new "
            "configuration. Relative to the pipeline file's folder.",
        },
        "timeout": {
            "title": "Timeout",
            "description": "Time limit of each nginx command and of the wait for new "
            "workers: a number of seconds or a value like 30s.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "default": "30s",
        },
        "endpoint": {
            "title": "Endpoint",
            "description": "The URL clients use to reach nginx, for probe traffic during a "
            "canary analysis.",
            "type": "string", "pattern": "^https?://",
        },
    },
    "required": ["config"],
}


@dataclass(frozen=True)
class NginxSettings:
    """The options of one ``nginx`` router, with defaults applied and paths resolved.

    ``timeout`` is in seconds. ``reload`` is empty unless a reload command was given.
    """

    config: Path
    upstream: str = "shipline"
    servers: Mapping[str, str] = field(default_factory=dict)
    nginx: str = "nginx"
    prefix: str | None = None
    conf: Path | None = None
    reload: tuple[str, ...] = ()
    pid: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    endpoint: str | None = None
    environment: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], base_dir: Path,
                     environment: str = "") -> NginxSettings:
        """Read validated router options; relative paths are taken from ``base_dir``."""
        conf = options.get("conf")
        pid = options.get("pid")
        return cls(
            config=base_dir / str(options["config"]),
            upstream=str(options.get("upstream", "shipline")),
            servers={str(k): str(v) for k, v in (options.get("servers") or {}).items()},
            nginx=str(options.get("nginx", "nginx")),
            prefix=str(options["prefix"]) if options.get("prefix") else None,
            conf=base_dir / str(conf) if conf else None,
            reload=tuple(str(arg) for arg in options.get("reload") or ()),
            pid=base_dir / str(pid) if pid else None,
            timeout=parse_duration(options.get("timeout", DEFAULT_TIMEOUT)),
            endpoint=options.get("endpoint"),
            environment=environment,
        )

    def nginx_argv(self, *args: str) -> tuple[str, ...]:
        """Return the nginx command line with ``-p`` and ``-c`` where set, then ``args``."""
        argv = [self.nginx]
        if self.prefix:
            argv += ["-p", self.prefix]
        if self.conf:
            argv += ["-c", str(self.conf)]
        return (*argv, *args)

    def reload_argv(self) -> tuple[str, ...]:
        return self.reload or self.nginx_argv("-s", "reload")


def is_address(text: str) -> bool:
    """Tell whether ``text`` has the ``host:port`` form that nginx accepts in ``server``."""
    return re.fullmatch(ADDRESS_PATTERN, text) is not None
