"""Schemathesis against the OpenAPI document of a running function server on the emulators.

Every operation is fuzzed with valid (positive) and invalid (negative) inputs
generated from the served document; valid ids are often swapped for the keys
of real jobs so that real transitions are tried too. No answer may be a 5xx;
every answer must be documented (status, content type, JSON shape); every
negative input must be rejected with a 4xx; and a request to update, error or
heartbeat answered 4xx must leave every job document as it was. Explicit
cases add oversized, unicode, control-character and HTML-bearing ids, states
and details. ``FUZZ_EXAMPLES`` (default 15) sets the examples per operation
and mode; the bounded default, with a fixed seed, runs in ``make test``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.defaults import JOB_WRITE_INTERVAL
from shared.model import Job, State
from shared.tracker import Tracker
from shared.web.parsers import NO_JOB_FOUND
from shared.web.routes import enabled

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
#: The bounded default run is repeatable; a longer one (FUZZ_EXAMPLES set) explores anew.
DERANDOMIZE = "FUZZ_EXAMPLES" not in os.environ
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
#: Paths whose rejected requests must change nothing (one path per handler is fuzzed).
WRITERS = {"/v2/job/update", "/v2/job/error", "/v2/job/heartbeat"}
#: The aliases of the router: the same handlers as the paths fuzzed.
ALIASES = {"/update", "/error", "/heartbeat", "/next_job", "/"}

NASTY_TEXT = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "ü" * 5000,  # unicode, over the 4,096-character limit
    "x" * 100_000,
    "line\r\nInjected: header",
    "nul\x00byte",
    "\x1b[31mred\x1b[0m",
    "\u202eevil",  # right-to-left override
    "😀" * 2049,  # 4,098 characters outside the BMP
]


@pytest.fixture
def fuzz_server(start_server, gcs_client, store, tmp_path) -> tuple[str, list[str]]:
    """A function server with a two-source config, archives, and jobs in several states."""
    bucket = f"fuzz-{os.urandom(6).hex()}"
    gcs_client.create_bucket(bucket)
    today = datetime.now(UTC).date()
    for back in (1, 2):
        day = today - timedelta(days=back)
        gcs_client.bucket(bucket).blob(f"ndt/ndt7/{day:%Y/%m/%d}/a.tgz").upload_from_string(b"x")
    config = tmp_path / "gardener.yml"
    config.write_text(
        f"start_date: {today - timedelta(days=3)}\n"
        "tracker:\n  timeout: 24h\nmonitor:\n  polling_interval: 1m\n"
        "sources:\n"
        f"  - {{bucket: {bucket}, experiment: ndt, datatype: ndt7, pipeline: [],\n"
        "      target_datasets: {tmp: tmp_ndt, raw: raw_ndt}}\n"
        f"  - {{bucket: {bucket}, experiment: wehe, datatype: scamper1, pipeline: [],\n"
        "      target_datasets: {tmp: tmp_wehe, raw: raw_wehe}}\n"
    )
    tracker = Tracker(store)
    keys = []
    paths = {
        State.INIT: [],
        State.PARSING: [State.PARSING],
        State.POST_PROCESSING: [State.PARSING, State.POST_PROCESSING],
        State.FAILED: [State.FAILED],
        State.COMPLETE: [State.PARSING, State.POST_PROCESSING, State.COMPLETE],
    }
    for offset, steps in enumerate(paths.values()):
        record = tracker.add_job(Job(bucket, "ndt", "ndt7", today - timedelta(days=30 + offset)))
        for state in steps:
            tracker.set_status(record.key, state, "seeded")
        keys.append(record.key)
    base = start_server(
        GARDENER_CONFIG=str(config),
        STORAGE_EMULATOR_HOST=os.environ["STORAGE_EMULATOR_HOST"],
        HEARTBEAT_COALESCE_SECONDS="0",
    )
    return base, keys


def snapshot(store) -> dict[str, Any]:
    """Every job document, by id."""
    return {doc.id: doc.to_dict() for doc in store.collection.stream()}


def invalid(path: str, url: str) -> bool:
    """Whether the endpoint's schema refuses the parameters of ``url`` as the server reads them.

    The oracle for "rejected": unknown parameters are ignored by design, so a
    negative case that only adds one is not a rejected input.
    """
    schema = enabled(None)[path].params
    if schema is None:
        return False
    query: dict[str, str] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        query.setdefault(name, value)  # the first value, as request.args.get gives
    try:
        schema.load(query)
    except ValidationError:
        return True
    return False


def fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: schemathesis.GenerationMode,
    base: str,
    keys: list[str],
    store,
    seen: dict[str, set[int]],
) -> None:
    """Run ``EXAMPLES`` generated cases of one operation in one mode, checking each answer."""
    writer = operation.path in WRITERS
    negative = mode is schemathesis.GenerationMode.NEGATIVE

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), key=st.sampled_from(keys) | st.none())
    def run(case: schemathesis.Case[Any], key: str | None) -> None:
        if key and not negative and case.query and "id" in case.query:
            case.query["id"] = key  # a real job: real transitions, 200s and 409s
        before = snapshot(store) if writer else None
        response = case.call(base_url=base, timeout=30)
        seen.setdefault(f"{case.method} {case.path} {mode.value}", set()).add(response.status_code)
        no_job = response.status_code == 503 and response.text == NO_JOB_FOUND
        assert response.status_code < 500 or no_job, (
            case.query,
            response.status_code,
            response.text,
        )
        case.validate_response(response, checks=CHECKS)
        url = response.request.url
        assert url is not None  # a sent request always has one
        if invalid(operation.path, url):
            assert 400 <= response.status_code < 500, (case.query, response.text)
        if writer and 400 <= response.status_code < 500:
            assert snapshot(store) == before, (case.query, response.status_code)

    run()


def test_fuzz_every_operation(fuzz_server, store):
    base, keys = fuzz_server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the served document describes an operation it cannot fuzz
        operations.append(result.ok())
    fuzzed = [op for op in operations if op.path not in ALIASES]
    assert {op.path for op in fuzzed} >= WRITERS | {"/v2/job/next", "/status", "/metrics"}
    missing = keys[0].rsplit("/", 1)[0] + "/20200101"  # well formed, no such job: 410
    seen: dict[str, set[int]] = {}
    for operation in fuzzed:
        modes = [schemathesis.GenerationMode.POSITIVE]
        if any(True for _ in operation.iter_parameters()):  # nothing to break without parameters
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            fuzz(operation, mode, base, [missing, *keys], store, seen)
    codes = set().union(*seen.values())  # the fuzz reached the interesting answers
    assert {200, 400, 409, 410} <= codes, seen


def rejected(live: str) -> list[tuple[str, dict[str, str]]]:
    """(path, parameters) pairs that must each be refused: every value here is invalid."""
    ids = [
        *NASTY_TEXT,
        f"{live}<script>",
        f"{live}\x00",
        f"{live}\n",
        f"{live}/",
        "ü" + live[1:],
        live.replace("ndt7", "ndt7<b>"),
        "a" * 401,
    ]
    long_texts = [t for t in NASTY_TEXT if len(t) > 4096]
    cases: list[tuple[str, dict[str, str]]] = []
    for bad in ids:
        cases += [
            ("/v2/job/update", {"id": bad, "state": "parsing"}),
            ("/v2/job/error", {"id": bad, "error": "x"}),
            ("/v2/job/heartbeat", {"id": bad}),
        ]
    for bad in [*NASTY_TEXT, "PARSING", "parsing ", "complete\x00"]:
        cases.append(("/v2/job/update", {"id": live, "state": bad}))
    for text in long_texts:
        cases += [
            ("/v2/job/update", {"id": live, "state": "parsing", "detail": text}),
            ("/v2/job/error", {"id": live, "error": text}),
        ]
    return cases


def test_nasty_values_are_rejected_with_4xx_and_change_nothing(fuzz_server, store):
    base, keys = fuzz_server
    live = keys[1]  # a parsing job
    before = snapshot(store)
    for path, params in rejected(live):
        for how in ("params", "data"):  # query string, then form body
            if how == "params":
                response = requests.post(f"{base}{path}", timeout=30, params=params)
            else:
                response = requests.post(f"{base}{path}", timeout=30, data=params)
            assert 400 <= response.status_code < 500, (path, how, params, response.text)
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            assert body["status"] == response.status_code and body["error"]
    for text in NASTY_TEXT:
        for name in ("state", "experiment", "datatype", "format", "limit"):
            response = requests.get(f"{base}/status", params={name: text}, timeout=30)
            assert response.status_code == 400, (name, text[:40])
    assert snapshot(store) == before


def test_nasty_but_valid_detail_is_stored_verbatim_and_shown_escaped(fuzz_server, store):
    base, keys = fuzz_server
    live = keys[1]
    for text in ("<script>alert(1)</script>", "ü\u202e😀", "tab\there", "nul\x00byte"):
        # The job list reads no progress shards: an update is on it once it goes to the
        # job document, which it does when that was last written a write interval ago.
        time.sleep(JOB_WRITE_INTERVAL.total_seconds())
        response = requests.post(
            f"{base}/v2/job/update",
            params={"id": live, "state": "parsing", "detail": text},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        status = requests.get(f"{base}/status", params={"format": "json"}, timeout=30).json()
        job = next(j for j in status["Jobs"] if j["ID"] == live)
        assert job["Detail"] == text
        page = requests.get(f"{base}/status", timeout=30).text
        assert "<script>alert" not in page
        if text.startswith("<script>"):
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
