"""Cloud Functions entry points of the tracker: bindings of :mod:`shared.web` only.

Each entry point hands its request to one endpoint of :mod:`shared.web`,
which takes the process's services from :mod:`shared.runtime`. ``api`` routes
by path to the route groups ``API_ROUTES`` enables (default: all), so one
base URL serves the Go parsers' ``/v2/job/...`` paths and the status page;
an unknown group stops the module at start.
"""

from __future__ import annotations

import sys
from pathlib import Path

import flask
import functions_framework

# The library sits beside this file in a deployed artifact and beside its
# folder in the repository; make it importable from wherever we are started.
for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if (_dir / "shared").is_dir():
        if str(_dir) not in sys.path:
            sys.path.insert(0, str(_dir))
        break

from shared import logs, runtime  # noqa: E402
from shared.web import job_page, parsers, scheduled  # noqa: E402
from shared.web import metrics as prometheus  # noqa: E402
from shared.web.routes import Router, enabled  # noqa: E402

logs.setup()

#: The ``api`` router: the enabled route groups. Single entry points are given its app.
API = Router(enabled(runtime.Settings.from_env().api_routes), runtime)

#: The ``admin`` entry point's router: the ``admin`` group alone.
ADMIN = Router(enabled(frozenset({"admin"})), runtime)


@functions_framework.http
def update(request: flask.Request) -> flask.Response:
    """``/v2/job/update``: report progress or a new state (parser states only)."""
    return parsers.update(request, API.app)


@functions_framework.http
def heartbeat(request: flask.Request) -> flask.Response:
    """``/v2/job/heartbeat``: prove the job's parser is alive."""
    return parsers.heartbeat(request, API.app)


@functions_framework.http
def error(request: flask.Request) -> flask.Response:
    """``/v2/job/error``: report a parse error."""
    return parsers.error(request, API.app)


@functions_framework.http
def next_job(request: flask.Request) -> flask.Response:
    """``/v2/job/next``: hand out the next job."""
    return parsers.next_job(request, API.app)


@functions_framework.http
def maintain(request: flask.Request) -> flask.Response:
    """``/maintain`` (Cloud Scheduler): expire, clean up, snapshot."""
    return scheduled.maintain(request, API.app)


@functions_framework.http
def postprocess(request: flask.Request) -> flask.Response:
    """``/postprocess`` (Cloud Scheduler): one post-processing tick."""
    return scheduled.postprocess(request, API.app)


@functions_framework.http
def status(request: flask.Request) -> flask.Response:
    """``/status``: every job; ``/status/job?id=``: one job; each an HTML page or JSON."""
    return job_page.status_function(request, API.app)


@functions_framework.http
def metrics(request: flask.Request) -> flask.Response:
    """``/metrics``: Prometheus text."""
    return prometheus.metrics(request, API.app)


@functions_framework.http
def admin(request: flask.Request) -> flask.Response:
    """``/admin/...``: operator control; deployed alone, ``/admin`` may be left out."""
    return ADMIN.admin(request)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """Route by path to the enabled groups: a drop-in base URL for the Go parsers."""
    return API.api(request)
