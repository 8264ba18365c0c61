"""The upstream file's text and state, without nginx."""

from __future__ import annotations

import pytest
from shipline_nginx.render import RoutingState, Server, read_state, render
from shipline_nginx.router import quote_nginx

BLUE = [Server("b1", "blue", "10.0.0.1:80"), Server("b2", "blue", "10.0.0.2:80")]
GREEN = [Server("g1", "green", "10.0.0.3:80")]


def server_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]


def test_render_active_slot_only() -> None:
    text = render("shop", RoutingState("blue"), BLUE + GREEN)

    assert server_lines(text) == [
        "server 10.0.0.1:80 weight=1;  # b1 (slot blue)",
        "server 10.0.0.2:80 weight=1;  # b2 (slot blue)",
    ]
    assert "upstream shop {" in text
    assert read_state(text) == RoutingState("blue")


@pytest.mark.parametrize(("weight", "blue_weight", "green_weight"), [
    (1, 99, 2), (20, 2, 1), (30, 7, 6), (50, 1, 2), (99, 1, 198),
])
def test_render_canary_weights(weight: int, blue_weight: int, green_weight: int) -> None:
    text = render("shop", RoutingState("blue", "green", weight), BLUE + GREEN)

    assert server_lines(text) == [
        f"server 10.0.0.1:80 weight={blue_weight};  # b1 (slot blue)",
        f"server 10.0.0.2:80 weight={blue_weight};  # b2 (slot blue)",
        f"server 10.0.0.3:80 weight={green_weight};  # g1 (slot green)",
    ]
    # Green's share of one round of the weights is exactly the requested percent.
    assert green_weight * 100 == weight * (2 * blue_weight + green_weight)


def test_render_weight_hundred_leaves_active_out() -> None:
    text = render("shop", RoutingState("blue", "green", 100), BLUE + GREEN)

    assert server_lines(text) == ["server 10.0.0.3:80 weight=1;  # g1 (slot green)"]


def test_render_slot_without_servers() -> None:
    with pytest.raises(ValueError) as raised:
        render("shop", RoutingState("blue", "green", 20), BLUE)

    assert str(raised.value) == (
        "slot 'green' must receive 20% of requests but none of its instances has an address")


def test_render_no_active_slot() -> None:
    with pytest.raises(ValueError) as raised:
        render("shop", RoutingState(), BLUE)

    assert str(raised.value) == "no slot is active yet"


def test_render_comment_is_one_line() -> None:
    text = render("shop", RoutingState("blue"), [Server("b1\n}\nevil", "blue", "10.0.0.1:80")])

    assert server_lines(text) == ["server 10.0.0.1:80 weight=1;  # b1?}?evil (slot blue)"]
    # Two header lines, the state, "upstream shop {", one server and "}".
    assert len(text.splitlines()) == 6


def test_read_state_missing_and_invalid() -> None:
    assert read_state("upstream shop { server 10.0.0.1:80; }\n") is None

    with pytest.raises(ValueError) as raised:
        read_state("# shipline-nginx-state: {\"active\": \"blue\"}\n")

    assert str(raised.value) == (
        "invalid state line '# shipline-nginx-state: {\"active\": \"blue\"}': 'canary'")


def test_quote_nginx_picks_level_lines() -> None:
    output = (
        "nginx: [emerg] unknown directive \"servr\" in /etc/nginx/up.conf:3\n"
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )

    assert quote_nginx(output) == '[emerg] unknown directive "servr" in /etc/nginx/up.conf:3'
    assert quote_nginx("2024/01/02 03:04:05 [emerg] 12#12: bad\n") == "[emerg] bad"
    assert quote_nginx("something else\n\n") == "something else"
    assert quote_nginx("") == "no output"
