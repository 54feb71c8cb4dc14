"""The endpoints Cloud Scheduler calls: maintenance and post-processing ticks.

Both work through many documents within a longer function timeout, so they
have no per-request Firestore budget (``endpoint(bulk=True)``).
"""

from __future__ import annotations

import flask

from shared.errors import Unavailable
from shared.web import openapi
from shared.web.endpoint import Answer, App, Route, endpoint, json_response


@endpoint(
    ["POST"],
    answers={200: Answer("a summary of the run", schema=openapi.MaintainAnswer())},
    bulk=True,
    raises=(Unavailable,),
)
def maintain(request: flask.Request, app: App) -> flask.Response:
    """``/maintain`` (Cloud Scheduler): expire stale jobs, remove old complete ones, snapshot."""
    return json_response(app.services.maintenance().run())


@endpoint(
    ["POST"],
    answers={200: Answer("a summary of the tick", schema=openapi.PostprocessAnswer())},
    bulk=True,
    raises=(Unavailable,),
)
def postprocess(request: flask.Request, app: App) -> flask.Response:
    """``/postprocess`` (Cloud Scheduler): one post-processing tick over leased jobs."""
    return json_response(app.services.postprocessor().tick())


ROUTES = (
    Route("/maintain", "scheduled", maintain),
    Route("/postprocess", "scheduled", postprocess),
)
