"""Prometheus metrics of the tracker, computed from Firestore at each scrape.

Nothing is counted in process memory (an instance may serve one request and
vanish): job counts per source and state come from the counter shards that
every job creation, deletion and change of state moves in its own commit
(:class:`~shared.store.StateCountStore`: one read of 16 documents); the
started/completed/failed totals are the sums of the counter shards kept in
the state-change transactions (one query); the stream positions come from the
job service's cursors; the oldest job in flight from one indexed query with
limit 1 per source; yesterday's daily jobs from one read per source, plus a
look in the reprocessing queue for a job not found (:mod:`shared.progress`); the
scheduled tasks' last successes, the pauses and the reprocessing queue's depth
from a query each. Every read is bounded by the number of sources, never by the
number of jobs. The names follow the Go Gardener's where they still mean the
same thing; every metric is described in docs/operations.md ("Metrics"), and
``deploy/alerts.yml`` alerts on them. ``prometheus_client`` is imported by the
first scrape, not with the module: no parser request needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

import flask

from shared.config import Config
from shared.errors import Unavailable
from shared.job_service import HISTORICAL
from shared.model import Pause
from shared.model.names import source_name
from shared.progress import Overview, Progress, SourceLabels, by_labels, timestamp
from shared.store import TASKS, TaskStore
from shared.streams import Stream
from shared.tracker import COMPLETED, FAILED, STARTED
from shared.transitions import TERMINAL
from shared.web.endpoint import Answer, App, Route, endpoint

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

#: Content type of a scrape's answer: ``prometheus_client.CONTENT_TYPE_LATEST`` (a test
#: keeps the two equal), written out so that the route table does not import the library.
CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"

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


class TrackerCollector:
    """Collects the tracker's metrics from Firestore when the registry is scraped
    (a ``prometheus_client`` collector).

    Counts, ages and totals come from ``progress``'s tracker, stream positions and
    yesterday from its overview; without its pauses, its queue or ``tasks``, their
    metrics are left out.
    """

    def __init__(self, progress: Progress, tasks: TaskStore | None = None) -> None:
        self.progress = progress
        self.tracker, self.config = progress.tracker, progress.config
        self.controls, self.queue = progress.controls, progress.queue
        self.tasks = tasks

    def scrape(self) -> bytes:
        """Return the metrics in the Prometheus text format, computed now."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(cast("Collector", self))
        return generate_latest(registry)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Yield every metric family (reads bounded by the number of sources; see the module)."""
        from prometheus_client.core import GaugeMetricFamily

        counts = self.tracker.counts_by_state(list(source_labels(self.config)))
        in_flight = GaugeMetricFamily(
            "gardener_tasks_in_flight",
            "Jobs in each non-terminal state (the Go service's name; "
            "the non-terminal part of gardener_jobs).",
            labels=["experiment", "datatype", "state"],
        )
        jobs = GaugeMetricFamily(
            "gardener_jobs",
            "Job documents in each state, terminal ones included "
            "(complete jobs until clean-up, failed jobs until retried).",
            labels=["experiment", "datatype", "state"],
        )
        for (experiment, datatype, state), n in counts.items():
            source = [str(experiment), str(datatype)]
            jobs.add_metric([*source, state.value], n)
            if state not in TERMINAL:
                in_flight.add_metric([*source, state.value], n)
        yield from (in_flight, jobs)
        yield self._oldest_in_flight()
        yield from self._totals()
        overview = self.progress.overview(count_queued=False)
        yield from self._cursor_metrics(overview)
        yield self._yesterday(overview)
        if self.tasks is not None:
            yield self._last_successes(self.tasks)
        if self.controls is not None:
            yield self._paused(overview.pauses)
        if self.queue is not None:
            depth = GaugeMetricFamily(
                "gardener_reprocess_queue_depth",
                "Jobs queued for reprocessing by operators, not yet handed out.",
            )
            depth.add_metric([], self.queue.count())
            yield depth

    def _oldest_in_flight(self) -> GaugeMetricFamily:
        """The age of each source's oldest run in flight (one query, limit 1, per source)."""
        sources = source_labels(self.config)
        started = self.tracker.oldest_in_flight(sources)
        now = self.tracker.clock()
        ages = {s: (now - started[s]).total_seconds() if s in started else 0.0 for s in sources}
        return _gauge(
            "gardener_oldest_in_flight_age_seconds",
            "Seconds since the oldest run in flight of each source started (0: none in flight).",
            ["experiment", "datatype"],
            {source: max(0.0, age) for source, age in ages.items()},
        )

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

    def _cursor_metrics(self, overview: Overview) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        position_family = GaugeMetricFamily(
            "gardener_stream_position_timestamp_seconds",
            "UTC midnight (Unix seconds) of the last day each source's stream has resolved.",
            labels=["experiment", "datatype", "stream"],
        )
        cycle = GaugeMetricFamily(
            "gardener_historical_cycle", "The historical stream's cycle (0 for the first pass)."
        )
        for labels, group in by_labels(overview.sources).items():
            # Sources sharing (experiment, datatype) report the earliest day.
            for stream, days in (
                (Stream.DAILY, [p.daily.date for p in group]),
                (Stream.HISTORICAL, [p.historical.date for p in group if p.historical]),
            ):
                known = [day for day in days if day is not None]
                if known:
                    position_family.add_metric([*labels, stream.value], timestamp(min(known)))
        if overview.historical is not None:
            cycle.add_metric([], overview.historical.cycle)
        yield from (position_family, cycle)

    def _yesterday(self, overview: Overview) -> GaugeMetricFamily:
        """Whether each source's job of yesterday (UTC) is done (:func:`shared.progress.yesterday_done`)."""
        return _gauge(
            "gardener_yesterday_complete",
            "1 if yesterday's (UTC) daily job of the source is done: the daily stream has "
            "resolved the day and its job is complete (or cleaned up after it was, and not "
            "queued for reprocessing, as a paused source's is); else 0.",
            ["experiment", "datatype"],
            {
                labels: 1.0 if all(p.daily.yesterday_complete for p in group) else 0.0
                for labels, group in by_labels(overview.sources).items()
            },
        )

    def _last_successes(self, tasks: TaskStore) -> GaugeMetricFamily:
        found = tasks.last_successes()
        return _gauge(
            "gardener_last_success_timestamp_seconds",
            "When each scheduled task (maintain, postprocess, snapshot) last succeeded "
            "(Unix seconds; absent until it has).",
            ["task"],
            {(task,): found[task].timestamp() for task in TASKS if task in found},
        )

    def _paused(self, pauses: Iterable[Pause]) -> GaugeMetricFamily:
        paused = {pause.target for pause in pauses}
        targets = [HISTORICAL, *dict.fromkeys(source_name(s) for s in self.config.sources)]
        return _gauge(
            "gardener_paused",
            "1 if an operator has paused the target (historical, or a source "
            "experiment/datatype), else 0.",
            ["target"],
            {(t,): 1.0 if t in paused else 0.0 for t in dict.fromkeys([*targets, *sorted(paused)])},
        )


def _gauge(
    name: str, text: str, labels: list[str], samples: Mapping[tuple[str, ...], float]
) -> GaugeMetricFamily:
    """A gauge family with one sample per entry of ``samples`` (its label values: its value)."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in samples.items():
        family.add_metric(list(values), value)
    return family


@endpoint(["GET"], answers={200: Answer("Prometheus text", (CONTENT_TYPE,))}, raises=(Unavailable,))
def metrics(request: flask.Request, app: App) -> flask.Response:
    """``/metrics``: job counts, ages, totals, stream positions, tasks' successes, pauses."""
    service = app.services.job_service()
    progress = Progress(
        app.services.tracker(),
        service.cursors,
        service.config,
        controls=app.services.controls(),
        queue=service.queue,
    )
    body = TrackerCollector(progress, tasks=app.services.tasks()).scrape()
    return flask.Response(body, content_type=CONTENT_TYPE)


ROUTES = (Route("/metrics", "status", metrics),)
