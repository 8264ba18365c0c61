"""The upstream file: the routing state it records and the nginx text it contains.

The file contains one ``upstream`` block and, in a comment line, the router's state
as JSON, from which the next run reads which slot is active::

    # shipline-nginx-state: {"active": "blue", "canary": "green", "weight": 20}
    upstream shipline {
        server 127.0.0.1:8001 weight=4;  # blue-1 (slot blue)
        server 127.0.0.1:8002 weight=1;  # green-1 (slot green)
    }

Traffic is split by nginx's default balancing method, smooth weighted round robin.
For a canary weight ``w`` with ``a`` active servers and ``c`` canary servers, each
active server gets weight ``(100 - w) * c`` and each canary server ``w * a``, divided
by their greatest common divisor. The slots then receive exactly ``100 - w`` and
``w`` percent of every ``100 / gcd`` consecutive requests that one worker process
proxies, as long as no server is marked failed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

STATE_PREFIX = "# shipline-nginx-state: "

_HEADER = (
    "# Written by shipline's nginx router. It rewrites this file at every weight change\n"
    "# and switch, so edits made by hand do not last.\n"
)

_UNSAFE_IN_COMMENT = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class RoutingState:
    """The routing of requests: the active slot, and the slot that receives a share."""

    active: str | None = None
    canary: str | None = None
    #: Percent (0-100) of requests sent to ``canary``.
    weight: int = 0

    def to_json(self) -> str:
        return json.dumps({"active": self.active, "canary": self.canary, "weight": self.weight})


@dataclass(frozen=True)
class Server:
    """One ``server`` line: the instance it stands for and its ``host:port``."""

    instance: str
    slot: str
    address: str


def read_state(text: str) -> RoutingState | None:
    """Return the state recorded in an upstream file's text, or ``None`` if it has none.

    Raises ValueError, naming the line, when the state line is not the JSON this
    module writes.
    """
    for line in text.splitlines():
        if not line.startswith(STATE_PREFIX):
            continue
        try:
            data = json.loads(line[len(STATE_PREFIX):])
            state = RoutingState(data["active"], data["canary"], int(data["weight"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid state line {line!r}: {exc}") from exc
        return state
    return None


def render(upstream: str, state: RoutingState, servers: Sequence[Server]) -> str:
    """Return the text of the upstream file for ``state``.

    ``servers`` are the servers of the active slot and of the canary slot; servers of
    a slot that receives no traffic are left out. Raises ValueError when a slot that
    must receive traffic has no server.
    """
    shares = _slot_shares(state)
    lines = [_HEADER + STATE_PREFIX + state.to_json(), f"upstream {upstream} {{"]
    counts = {slot: sum(1 for s in servers if s.slot == slot) for slot in shares}
    for slot, count in counts.items():
        if count == 0:
            raise ValueError(f"slot '{slot}' must receive {shares[slot]}% of requests but "
                             "none of its instances has an address")

    weights = _server_weights(shares, counts)
    for server in servers:
        if server.slot not in weights:
            continue
        label = _UNSAFE_IN_COMMENT.sub("?", f"{server.instance} (slot {server.slot})")
        lines.append(f"    server {server.address} weight={weights[server.slot]};  # {label}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _slot_shares(state: RoutingState) -> dict[str, int]:
    """Return the percent of requests of each slot that receives any."""
    if state.active is None:
        raise ValueError("no slot is active yet")
    if state.canary is None or state.weight == 0:
        return {state.active: 100}
    if state.weight == 100:
        return {state.canary: 100}
    return {state.active: 100 - state.weight, state.canary: state.weight}


def _server_weights(shares: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """Return per slot the nginx ``weight=`` of each of its servers.

    Each server of a slot gets ``share * (product of the other slots' counts)``, so
    every slot's servers together get its share. All weights are then divided by their
    greatest common divisor, which keeps the numbers small.
    """
    raw = {}
    for slot, share in shares.items():
        others = math.prod(count for other, count in counts.items() if other != slot)
        raw[slot] = share * others
    divisor = math.gcd(*raw.values())
    return {slot: value // divisor for slot, value in raw.items()}
