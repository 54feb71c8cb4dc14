"""Prometheus metrics of the tracker, computed from Firestore at each scrape.

Nothing is counted in process memory (an instance may serve one request and
vanish): job counts per source and state come from the counter shards that
every job creation, deletion and change of state moves in its own commit
(:class:`~shared.store.StateCountStore`: one read of 16 documents); the
started/completed/failed totals are the sums of the counter shards kept in
the state-change transactions (one query); the stream dates come from the
job service's cursors. The names follow the Go
Gardener's where they still mean the same thing; every metric is described in
docs/operations.md ("Metrics"). ``prometheus_client`` is imported by the first scrape,
not with the module: no parser request needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, cast

import flask

from shared.config import Config
from shared.errors import Unavailable
from shared.model import State
from shared.store import CursorStore
from shared.streams import Position, Stream
from shared.tracker import COMPLETED, FAILED, STARTED, Tracker
from shared.transitions import TERMINAL
from shared.web.endpoint import Answer, App, Route, endpoint

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

#: Content type of a scrape's answer: ``prometheus_client.CONTENT_TYPE_LATEST`` (a test
#: keeps the two equal), written out so that the route table does not import the library.
CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"

SourceLabels = tuple[str, str]  # (experiment, datatype)

#: The totals exported, by the name they are kept under: (metric name, help).
#: The names are the Go service's (``gardener_fail_total`` without its failure-kind label).
TOTALS: dict[str, tuple[str, str]] = {
    STARTED: (
        "gardener_started_total",
        "Jobs handed out: new jobs, and complete or failed jobs started again.",
    ),
    COMPLETED: ("gardener_completed_total", "Changes of a job into the complete state."),
    FAILED: (
        "gardener_fail_total",
        "Changes of a job into the failed state (errors, expiry, operators, post-processing).",
    ),
}


def source_labels(config: Config) -> list[SourceLabels]:
    """Return the distinct (experiment, datatype) pairs of the config, in config order."""
    return list(dict.fromkeys((s.experiment, s.datatype) for s in config.sources))


def stream_dates(
    config: Config, stream: Stream, position: Position
) -> dict[SourceLabels, datetime]:
    """Return, per source of ``stream``, the last day its cursor has resolved (UTC midnight).

    Sources before the cursor's source index have resolved the cursor's day,
    the others the day before. Sources sharing (experiment, datatype) report
    the earliest; ``daily_only`` sources are not in the historical stream.
    """
    dates: dict[SourceLabels, datetime] = {}
    for index, source in enumerate(config.sources):
        if stream is Stream.HISTORICAL and source.daily_only:
            continue
        day = position.day if index < position.source else position.day - timedelta(days=1)
        when = datetime.combine(day, time(0), tzinfo=UTC)
        labels = (source.experiment, source.datatype)
        dates[labels] = min(when, dates.get(labels, when))
    return dates


class TrackerCollector:
    """Collects the tracker's metrics from Firestore when the registry is scraped
    (a ``prometheus_client`` collector)."""

    def __init__(self, tracker: Tracker, cursors: CursorStore, config: Config) -> None:
        self.tracker = tracker
        self.cursors = cursors
        self.config = config

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Yield every metric family (one read of the job counts' shards, one totals query)."""
        from prometheus_client.core import GaugeMetricFamily

        counts = self.tracker.counts_by_state(list(source_labels(self.config)))
        in_flight = GaugeMetricFamily(
            "gardener_tasks_in_flight",
            "Jobs in each non-terminal state.",
            labels=["experiment", "datatype", "state"],
        )
        jobs = GaugeMetricFamily(
            "gardener_jobs",
            "Job documents in each state, terminal ones included "
            "(complete jobs until clean-up, failed jobs until retried).",
            labels=["experiment", "datatype", "state"],
        )
        failed = GaugeMetricFamily(
            "gardener_failed_jobs",
            "Jobs in the failed state (kept until retried).",
            labels=["experiment", "datatype"],
        )
        for (experiment, datatype, state), n in counts.items():
            source = [str(experiment), str(datatype)]
            jobs.add_metric([*source, state.value], n)
            if state not in TERMINAL:
                in_flight.add_metric([*source, state.value], n)
            if state is State.FAILED:
                failed.add_metric(source, n)
        yield from (in_flight, jobs, failed)
        yield from self._totals()
        yield from self._cursor_metrics()

    def _totals(self) -> Iterator[CounterMetricFamily]:
        """Yield the started/completed/failed totals of the config's sources (0 until counted)."""
        from prometheus_client.core import CounterMetricFamily

        kept = self.tracker.totals()
        families = {
            name: CounterMetricFamily(
                metric.removesuffix("_total"), text, labels=["experiment", "datatype"]
            )
            for name, (metric, text) in TOTALS.items()
        }
        for source in source_labels(self.config):
            for name, family in families.items():
                family.add_metric(list(source), kept.get(source, {}).get(name, 0))
        yield from families.values()

    def _cursor_metrics(self) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        state_date = GaugeMetricFamily(
            "gardener_state_date",
            "Last day (Unix seconds of its UTC midnight) each source's stream has resolved.",
            labels=["experiment", "datatype", "stream"],
        )
        cycle = GaugeMetricFamily(
            "gardener_historical_cycle", "The historical stream's cycle (0 for the first pass)."
        )
        for stream in Stream:
            stored = self.cursors.get(stream.value)
            if stored is None:
                continue
            position = Position.decode(stored)
            for (experiment, datatype), when in stream_dates(self.config, stream, position).items():
                state_date.add_metric([experiment, datatype, stream.value], when.timestamp())
            if stream is Stream.HISTORICAL:
                cycle.add_metric([], position.cycle)
        yield from (state_date, cycle)


def scrape(tracker: Tracker, cursors: CursorStore, config: Config) -> bytes:
    """Return the metrics in the Prometheus text format, computed now."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(cast("Collector", TrackerCollector(tracker, cursors, config)))
    return generate_latest(registry)


@endpoint(["GET"], answers={200: Answer("Prometheus text", (CONTENT_TYPE,))}, raises=(Unavailable,))
def metrics(request: flask.Request, app: App) -> flask.Response:
    """``/metrics``: job counts per source and state and the streams' dates, Prometheus text."""
    service = app.services.job_service()
    body = scrape(app.services.tracker(), service.cursors, service.config)
    return flask.Response(body, content_type=CONTENT_TYPE)


ROUTES = (Route("/metrics", "status", metrics),)
