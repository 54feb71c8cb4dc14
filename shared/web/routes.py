"""The one route table, the route groups derived from it, and the routers that serve it.

Each web module declares its routes beside its handlers (as Go's
``handler.go`` registers them); this table joins them. A route group is the
set of paths whose :class:`~shared.web.endpoint.Route` names it, so no path
is listed twice. ``API_ROUTES`` enables groups of the ``api`` router
(default: all); Terraform deploys it with ``parser,docs``.
"""

from __future__ import annotations

from collections.abc import Mapping

import flask

from shared.config import ConfigError
from shared.web import admin, job_page, metrics, openapi, parsers, scheduled, status
from shared.web.endpoint import App, Endpoint, Route, Services, error_response

#: Every route: the parsers' Go paths and each entry point's name, the scheduled
#: ticks, the status and job pages and metrics, the OpenAPI document, ``/admin/...``.
ROUTES: tuple[Route, ...] = (
    *parsers.ROUTES,
    *scheduled.ROUTES,
    *status.ROUTES,
    *job_page.ROUTES,
    *metrics.ROUTES,
    *openapi.ROUTES,
    *admin.ROUTES,
)

#: The paths of each route group, in table order.
ROUTE_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(r.path for r in ROUTES if r.group == group)
    for group in dict.fromkeys(r.group for r in ROUTES)
}


def enabled(groups: frozenset[str] | None) -> dict[str, Endpoint]:
    """Return the routes of ``groups`` (all when None) by path; ConfigError names unknown ones."""
    unknown = sorted((groups or frozenset()) - ROUTE_GROUPS.keys())
    if unknown:
        raise ConfigError(
            [
                f"API_ROUTES: unknown route group {', '.join(map(repr, unknown))}; "
                f"groups: {', '.join(ROUTE_GROUPS)}"
            ]
        )
    return {r.path: r.handler for r in ROUTES if groups is None or r.group in groups}


def groups_of(routes: Mapping[str, Endpoint]) -> dict[str, str]:
    """Return the route group of each of ``routes``' paths that :data:`ROUTES` declares."""
    return {r.path: r.group for r in ROUTES if r.path in routes}


class Router:
    """Serves ``routes`` (path → endpoint), each handler given the services, the routes
    and their groups (from :data:`ROUTES`)."""

    def __init__(self, routes: Mapping[str, Endpoint], services: Services) -> None:
        self.app = App(services, routes, groups_of(routes))

    def api(self, request: flask.Request) -> flask.Response:
        """Route by path (a trailing slash ignored); 404 lists the paths served, sorted."""
        handler = self.app.routes.get(request.path.rstrip("/") or "/")
        if handler is None:
            return error_response(
                404, f"no such path {request.path}; paths: {', '.join(sorted(self.app.routes))}"
            )
        return handler(request, self.app)

    def admin(self, request: flask.Request) -> flask.Response:
        """Route ``/admin/...`` by path, ``/admin`` optional (a function deployed alone may be
        called without it); 404 lists the paths served, in table order."""
        path = request.path.rstrip("/")
        handler = self.app.routes.get(path if path.startswith("/admin/") else "/admin" + path)
        if handler is None:
            return error_response(
                404, f"no such path {request.path}; paths: {', '.join(self.app.routes)}"
            )
        return handler(request, self.app)
