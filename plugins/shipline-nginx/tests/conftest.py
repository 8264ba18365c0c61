"""The fixtures of the nginx tests, defined in nginx_fixtures.py."""

from nginx_fixtures import nginx, service, start_nginx

__all__ = ["nginx", "service", "start_nginx"]
