"""The router against a real nginx, with FakeTarget slots whose instances are real
services: the split nginx serves, switches, state kept in the file, and failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nginx_fixtures import NGINX, Nginx
from shipline_nginx import NginxError, NginxRouter, NginxSettings
from shipline_nginx.render import RoutingState, read_state

from pipeline.testtarget import FakeTarget


def make_router(server: Nginx, target: FakeTarget, **options: object) -> NginxRouter:
    settings = NginxSettings.from_options(server.router_options(**options), Path("/"),
                                          "production")
    return NginxRouter.create(settings, target)


@pytest.fixture
def two_slots(service: Callable[[str], str]) -> FakeTarget:
    """Blue: one instance of 1.0 (active). Green: one instance of 2.0."""
    return FakeTarget(slots={"blue": [service("1.0")], "green": [service("2.0")]})


def test_router_create_routes_to_active_slot(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)

    assert router.active_slot() == "blue"
    assert nginx.served(100) == {"1.0": 100}


def test_router_weight_split_is_exact(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)

    router.set_weight("green", 20)

    assert nginx.served(1000) == {"1.0": 800, "2.0": 200}


def test_router_weight_split_with_uneven_slots(
    nginx: Nginx, service: Callable[[str], str]
) -> None:
    blue = [service("1.0"), service("1.0")]
    green = [service("2.0")]
    router = make_router(nginx, FakeTarget(slots={"blue": blue, "green": green}))

    router.set_weight("green", 30)

    # Weights 7, 7 and 6: 1,000 requests are 50 whole rounds of 20.
    assert nginx.served(1000) == {"1.0": 700, "2.0": 300}
    text = nginx.upstream.read_text()
    assert f"server {blue[0]} weight=7;" in text
    assert f"server {blue[1]} weight=7;" in text
    assert f"server {green[0]} weight=6;" in text


def test_router_weight_zero_and_hundred(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)

    router.set_weight("green", 100)
    assert nginx.served(50) == {"2.0": 50}

    router.set_weight("green", 0)
    assert nginx.served(50) == {"1.0": 50}


def test_router_switch_moves_all_traffic(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)
    router.set_weight("green", 50)

    router.switch("green")

    assert router.active_slot() == "green"
    assert nginx.served(200) == {"2.0": 200}


def test_router_state_read_by_next_router(nginx: Nginx, two_slots: FakeTarget) -> None:
    make_router(nginx, two_slots).set_weight("green", 50)
    two_slots.active = None  # as a target that is no router: the file decides

    again = make_router(nginx, two_slots)

    assert again.active_slot() == "blue"
    assert nginx.served(20) == {"1.0": 10, "2.0": 10}


def test_router_target_active_slot_beats_file(nginx: Nginx, two_slots: FakeTarget) -> None:
    make_router(nginx, two_slots).switch("green")
    assert two_slots.active == "blue"

    again = make_router(nginx, two_slots)

    assert again.active_slot() == "blue"
    assert nginx.served(20) == {"1.0": 20}
    assert read_state(nginx.upstream.read_text()) == RoutingState("blue")


def test_router_rejected_config_keeps_last_good(
    start_nginx: Callable[..., Nginx], two_slots: FakeTarget
) -> None:
    nginx = start_nginx(extra_http="    upstream taken { server 127.0.0.1:9; }\n")
    router = make_router(nginx, two_slots)
    good = nginx.upstream.read_text()
    router.settings = NginxSettings.from_options(
        nginx.router_options(upstream="taken"), Path("/"), "production")

    with pytest.raises(NginxError) as raised:
        router.set_weight("green", 20)

    assert str(raised.value) == (
        "environment 'production': nginx router: nginx -T rejected the new configuration: "
        f'[emerg] duplicate upstream "taken" in {nginx.conf}:15; '
        f"the rejected text was saved in '{nginx.upstream}.rejected'; "
        f"'{nginx.upstream}' was restored to the previous version"
    )
    assert nginx.upstream.read_text() == good
    assert "upstream taken {" in Path(f"{nginx.upstream}.rejected").read_text()
    assert router.active_slot() == "blue"
    assert nginx.served(20) == {"1.0": 20}


def test_router_rejected_first_file_is_deleted(
    start_nginx: Callable[..., Nginx], two_slots: FakeTarget
) -> None:
    nginx = start_nginx(extra_http="    upstream taken { server 127.0.0.1:9; }\n")
    nginx.upstream.unlink()

    with pytest.raises(NginxError) as raised:
        make_router(nginx, two_slots, upstream="taken")

    assert str(raised.value) == (
        "environment 'production': nginx router: nginx -T rejected the new configuration: "
        f'[emerg] duplicate upstream "taken" in {nginx.conf}:15; '
        f"the rejected text was saved in '{nginx.upstream}.rejected'; "
        f"'{nginx.upstream}' was deleted, because it did not exist before the change"
    )
    assert not nginx.upstream.exists()
    assert "upstream taken {" in Path(f"{nginx.upstream}.rejected").read_text()


def test_router_file_not_included(nginx: Nginx, two_slots: FakeTarget, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.conf"

    with pytest.raises(NginxError) as raised:
        make_router(nginx, two_slots, config=str(elsewhere))

    assert str(raised.value) == (
        f"environment 'production': nginx router: {nginx.conf} does not include "
        f"'{elsewhere}', so nginx would not route by it: add 'include {elsewhere};' to its "
        "http block, or set the router's 'conf' option to the nginx.conf that includes it; "
        f"'{elsewhere}' was deleted, because it did not exist before the change"
    )
    assert not elsewhere.exists()


def test_router_missing_binary(nginx: Nginx, two_slots: FakeTarget) -> None:
    with pytest.raises(NginxError) as raised:
        make_router(nginx, two_slots, nginx="/nonexistent/nginx")

    assert str(raised.value) == (
        "environment 'production': nginx router: nginx -T cannot run: '/nonexistent/nginx' "
        "not found; install nginx or set the router's 'nginx' option to its path; "
        f"'{nginx.upstream}' was restored to the previous version"
    )
    assert nginx.upstream.read_text().startswith("upstream shipline {")


def test_router_reload_failure_restores_file(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)
    good = nginx.upstream.read_text()
    reload = [sys.executable, "-c", "import sys; sys.exit('nginx: [error] reload refused')"]
    router.settings = NginxSettings.from_options(
        nginx.router_options(reload=reload), Path("/"), "production")

    with pytest.raises(NginxError) as raised:
        router.switch("green")

    assert str(raised.value) == (
        f"environment 'production': nginx router: the reload command {' '.join(reload)} "
        "failed with exit code 1: [error] reload refused; "
        f"'{nginx.upstream}' was restored to the previous version"
    )
    assert nginx.upstream.read_text() == good
    assert router.active_slot() == "blue"


def test_router_reload_not_applied_restores_file(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)
    good = nginx.upstream.read_text()
    router.settings = NginxSettings.from_options(
        nginx.router_options(reload=["true"], timeout="300ms"), Path("/"), "production")

    with pytest.raises(NginxError) as raised:
        router.switch("green")

    master = nginx.pid.read_text().strip()
    assert str(raised.value) == (
        f"environment 'production': nginx router: nginx (master pid {master}) did not start "
        "workers with the new configuration within 300ms of the reload; its error log says "
        f"why; '{nginx.upstream}' was restored to the previous version"
    )
    assert nginx.upstream.read_text() == good
    assert nginx.served(20) == {"1.0": 20}


def test_router_rejects_bad_requests(nginx: Nginx, two_slots: FakeTarget) -> None:
    router = make_router(nginx, two_slots)

    with pytest.raises(NginxError) as unknown:
        router.set_weight("red", 10)
    with pytest.raises(NginxError) as active:
        router.set_weight("blue", 10)
    with pytest.raises(NginxError) as weight:
        router.set_weight("green", 101)

    assert str(unknown.value) == (
        "environment 'production': nginx router: unknown slot 'red': use one of blue, green")
    assert str(active.value) == ("environment 'production': nginx router: slot 'blue' is "
                                 "the active slot; switch to move all traffic")
    assert str(weight.value) == ("environment 'production': nginx router: invalid weight "
                                 "101: use a whole number from 0 to 100")


def test_nginx_binary_is_installed() -> None:
    assert Path(NGINX).exists()
