"""Every tunable default, in one place: what each is, and its unit.

Modules read their defaults from here; a deployment overrides some of them
through environment variables (:mod:`shared.runtime`, docs/operations.md "Configuration",
named beside each default below), and tests and benchmarks through the
constructors' arguments. Nothing here imports anything of the project.
"""

from __future__ import annotations

from datetime import timedelta

# --- the parsers' hot path (shared.tracker) -----------------------------------------------

#: A heartbeat this soon after the job's last recorded activity is acknowledged without a
#: write (``HEARTBEAT_COALESCE_SECONDS``).
HEARTBEAT_COALESCE = timedelta(seconds=5)

#: Least time between two hot-path writes of one job document; sooner ones go to the
#: job's progress shards.
JOB_WRITE_INTERVAL = timedelta(seconds=1)

#: How often a hot-path write of the job document also records the sum of the run's
#: progress shards, for readers that do not read them.
SHARD_SUM_INTERVAL = timedelta(seconds=10)

# --- retries of failed jobs (shared.tracker.RetryPolicy) ----------------------------------

#: Runs a job may make in all before a failure is final (``RETRY_MAX_ATTEMPTS``).
RETRY_MAX_ATTEMPTS = 3

#: Wait after a job's first failed run before it is handed out again; doubled after each
#: further failure (``RETRY_BACKOFF``, a Go duration).
RETRY_BACKOFF = timedelta(minutes=10)

# --- earlier runs of a job (shared.model.record) ------------------------------------------

#: Earlier runs a job keeps a summary of (complete or failed, newest last); a restart beyond
#: this drops the oldest; 0 keeps none. With :data:`RUN_HISTORY_KEEP` and
#: :data:`RUN_ERROR_LENGTH` a job's runs take about 72 KB of its document at worst
#: (tests/unit/test_run_summaries.py).
RUNS_KEEP = 5

#: History entries a kept run holds: its first and its latest (details cut to
#: :data:`shared.model.OLD_DETAIL_LENGTH` characters); the others are counted.
RUN_HISTORY_KEEP = 12

#: Characters of a kept run's error; a longer one is cut.
RUN_ERROR_LENGTH = 1000

# --- next-job (shared.job_service) --------------------------------------------------------

#: Candidates (GCS checks) one next-job request examines at most before answering "no job".
MAX_STEPS = 64

#: A caller that loses a candidate to another jumps ahead by a random number of
#: candidates below this (a count of candidates).
SPREAD = 32

#: Ended jobs owed a run (re-offers, due retries) one query reads per page; also the
#: queued reprocessing one request looks at (jobs).
REOFFER_BATCH = 10

#: Pages of owed runs one request reads at most per query while no source is paused.
OWED_PAGES = 10

#: The owed-run queries of ``next`` run at least this often even while the owed-runs
#: hint says nothing is owed, so a run made owed by a writer that does not note the hint
#: (an older version during a deployment, a write by hand) waits at most this long.
OWED_RECHECK = timedelta(minutes=5)

#: How long after the end of day D the daily job for D becomes available (config
#: ``daily_delay``).
DAILY_DELAY = timedelta(hours=10, minutes=30)

#: The least time from the start of one historical cycle to the start of the next (config
#: ``min_cycle_interval``); 0: a cycle starts over as soon as the previous one ends.
MIN_CYCLE_INTERVAL = timedelta(0)

# --- Firestore (shared.store) -------------------------------------------------------------

#: How long a request may wait on Firestore in all, and one call at most (seconds;
#: ``FIRESTORE_DEADLINE_SECONDS``).
FIRESTORE_DEADLINE = 20.0

#: Progress shards per job and run that hot-path writes spread over (documents).
PROGRESS_SHARDS = 32

#: Shard documents per source (experiment, datatype) for its totals.
#:
#: Firestore sustains about one write per second per document. A job run makes
#: two counted changes (its hand-out, then its completion or failure), each one
#: write to a shard of its source picked at random, so a source's shards share
#: its counted changes: with 16 shards a source may make 16 counted changes a
#: second — 8 job runs started and ended every second — before a shard nears one
#: write a second. A source's jobs are days of archives, handed out a few a
#: minute, so even a burst of 16 parsers finishing at once adds about one write
#: per shard. A scrape reads every shard: 16 reads per source.
COUNTER_SHARDS = 16

#: Shard documents of the job counts, for all sources together.
#:
#: Every write that creates, deletes or changes the state of a job adds one
#: write to one shard picked at random, so the shards share every state change
#: of every source. A job makes about 10 such changes in its life (created,
#: parsing, postProcessing, five post-processing steps, complete, removed): at
#: 10,000 jobs a day that is about 1.2 writes a second in all, 0.07 a second
#: per shard — Firestore's one write a second per document is reached at about
#: 16 changes a second, some 140,000 job lives a day. A status load or a scrape
#: reads all 16, whatever the number of sources and jobs.
STATE_COUNT_SHARDS = 16

# --- the status page (shared.web.status, shared.progress) -------------------------------

#: Jobs the status page lists by default (``limit``).
STATUS_LIMIT = 1000

#: Seconds between the status page's reloads by default (``refresh``; 0 turns them off).
STATUS_REFRESH = 30

#: Days the status page's date × source grid shows by default, back from yesterday (``days``).
STATUS_GRID_DAYS = 14

#: Most days the grid may show: each day costs one document read per source.
STATUS_GRID_MAX_DAYS = 90

# --- maintenance (shared.maintenance) -----------------------------------------------------

#: A complete job is removed this long after its last update (``CLEANUP_DELAY``).
CLEANUP_DELAY = timedelta(hours=3)

#: Jobs one maintenance run expires, and complete jobs it removes, at most.
MAINTENANCE_BATCH = 500

# --- post-processing (shared.postprocess, shared.warehouse) -------------------------------

#: How long a post-processing tick may work, visits included (seconds;
#: ``POSTPROCESS_TICK_SECONDS``). The deployed function's timeout is 540 s: a minute of margin.
POSTPROCESS_TICK_SECONDS = 480.0

#: Leasable jobs a tick reads per query (jobs; ``POSTPROCESS_BATCH``).
POSTPROCESS_BATCH = 50

#: How long a tick's lease on a job lasts.
POSTPROCESS_LEASE = timedelta(minutes=5)

#: Attempts of a post-processing step that fails in a retryable way.
POSTPROCESS_MAX_ATTEMPTS = 5

#: Wait before another attempt of a step that failed in a retryable way.
POSTPROCESS_BACKOFF = timedelta(minutes=1)

#: When a step's BigQuery job is still running, look again after this long.
POSTPROCESS_POLL = timedelta(seconds=30)

#: How long all the attempts of one BigQuery API call may take (seconds).
BIGQUERY_CALL_DEADLINE = 60.0

#: How long one HTTP request to BigQuery may take (seconds).
BIGQUERY_TIMEOUT = 30.0

#: Where the BigQuery datasets are and the jobs run (``BIGQUERY_LOCATION``).
BIGQUERY_LOCATION = "US"

# --- operators (shared.admin, shared.snapshot) --------------------------------------------

#: Jobs one reprocessing request may queue, days × sources (``REPROCESS_MAX``).
REPROCESS_MAX = 1000

#: Prefix of the snapshot objects in the snapshot bucket (``SNAPSHOT_PREFIX``).
SNAPSHOT_PREFIX = "snapshots/"

#: Snapshots kept: two days of half-hourly runs (``SNAPSHOT_KEEP``).
SNAPSHOT_KEEP = 48

#: Seconds a snapshot keeps retrying a GCS request that fails transiently before it gives
#: up with :class:`~shared.snapshot.SnapshotUnavailable` (the storage library's own default
#: is 120 s, longer than a function's 60 s default timeout, so a GCS outage would end in a
#: killed request).
SNAPSHOT_GCS_DEADLINE = 30.0

#: Bytes of job entries an export holds in memory before its spool spills to a temporary file.
SNAPSHOT_SPOOL_MAX = 8 * 1024 * 1024

#: Bytes an export buffers before it uploads a chunk (a multiple of 256 KiB, as resumable
#: uploads require).
SNAPSHOT_UPLOAD_CHUNK = 8 * 1024 * 1024

# --- operators' identity (shared.web.identity) --------------------------------------------

#: OAuth client IDs a person's own Google ID token may be minted for, besides the service's
#: URL (``OPERATOR_TOKEN_AUDIENCES``): the gcloud CLI's, whose ``gcloud auth
#: print-identity-token`` is what a person has at hand.
OPERATOR_TOKEN_AUDIENCES: tuple[str, ...] = ("32555940559.apps.googleusercontent.com",)

#: How long fetched Google certificates and IAP keys are used before being fetched again
#: (Google rotates them daily).
IDENTITY_KEYS_TTL = timedelta(hours=1)

#: Seconds one fetch of Google's certificates or IAP's keys may take.
IDENTITY_KEYS_TIMEOUT = 10.0

#: Seconds the ``gardener`` command line waits for ``gcloud auth print-identity-token``.
GCLOUD_TOKEN_TIMEOUT = 30.0

# --- callers of a deployment (shared.transport, shared.client, shared.cli) -----------------

#: Seconds one HTTP call to the tracker may take, per attempt.
CALL_TIMEOUT = 30.0

#: Attempts of one call (the first included) when the tracker is unreachable, throttles (429)
#: or fails (5xx).
CALL_ATTEMPTS = 5

#: First wait between two attempts, in seconds; it doubles (with full jitter) after each.
CALL_BACKOFF = 0.5

#: Longest wait between two attempts, in seconds.
CALL_MAX_BACKOFF = 10.0

#: Seconds one call of the operator's command line may take, per attempt (``--timeout``).
CLI_TIMEOUT = 60.0
