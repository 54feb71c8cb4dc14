"""The HTTP layer: endpoints, the route table, views, the OpenAPI document, status page, metrics.

``functions/main.py`` binds its entry points to these modules; nothing below
the web layer (model, store, operations) imports from here.

- :mod:`~shared.web.endpoint`: the wrapper every handler goes through, :class:`Route`, parsing.
- :mod:`~shared.web.errors`: the status code of each error.
- :mod:`~shared.web.routes`: the one route table, its groups, the routers.
- :mod:`~shared.web.parsers`, :mod:`~shared.web.scheduled`, :mod:`~shared.web.status`,
  :mod:`~shared.web.job_page`, :mod:`~shared.web.metrics`, :mod:`~shared.web.openapi`,
  :mod:`~shared.web.admin`:
  the endpoints, each module with its routes.
- :mod:`~shared.web.views`: the Go-shaped JSON of jobs, pauses, audit, queue items, controls.
- :mod:`~shared.web.pages`: what the HTML pages share: their templates, spans of time.
- :mod:`~shared.web.identity`: who makes an admin request (Google ID tokens).
"""
