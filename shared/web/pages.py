"""What the HTML pages share: their Jinja templates and how they show a span of time."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.gotime import clock_parts

if TYPE_CHECKING:
    import jinja2


@functools.cache
def template(name: str) -> jinja2.Template:
    """Return the page template ``name`` of ``shared/web/templates`` (every text escaped)."""
    import jinja2  # deferred: only the HTML pages need it, not a parser's request

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("shared.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(name)


def span(delta: timedelta) -> str:
    """A short human span: ``2d 3h``, ``3h 5m``, ``4m 10s``, ``12s`` (negative: ``0s``)."""
    days, hours, minutes, secs = clock_parts(max(0, int(delta.total_seconds())))
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
