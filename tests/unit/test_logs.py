"""Log set-up and the JSON lines: fields Cloud Logging reads, trace ids, format choice."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from shared import logs

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Cloud-Trace-Context": f"{TRACE}/1;o=1"}, TRACE),
        ({"X-Cloud-Trace-Context": TRACE.upper()}, TRACE),
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, TRACE),
        (
            {
                "X-Cloud-Trace-Context": "1234/1;o=1",
                "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
            },
            TRACE,
        ),
        ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, None),
        ({"traceparent": "garbage"}, None),
        ({}, None),
    ],
)
def test_trace_id_from_either_header(headers: dict[str, str], expected: str | None) -> None:
    assert logs.trace_id(headers) == expected


@pytest.mark.parametrize(
    ("env", "json_lines"),
    [
        ({}, False),
        ({"K_SERVICE": "api"}, True),
        ({"LOG_FORMAT": "json"}, True),
        ({"LOG_FORMAT": "TEXT", "K_SERVICE": "api"}, False),
    ],
)
def test_json_in_the_cloud_and_when_asked(env: dict[str, str], json_lines: bool) -> None:
    assert logs.wants_json(env) is json_lines


def test_a_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or text"):
        logs.wants_json({"LOG_FORMAT": "xml"})


def emit(formatter: logging.Formatter, level: int, msg: str, **extra: object) -> dict[str, Any]:
    record = logging.LogRecord("shared.tracker", level, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    line: dict[str, Any] = json.loads(formatter.format(record))
    return line


def test_a_line_carries_severity_message_logger_time_and_extra_fields() -> None:
    line = emit(
        logs.CloudLoggingFormatter("demo-p"),
        logging.WARNING,
        "job k: init -> parsing",
        job="b/e/d/20260101",
        old_state="init",
        new_state="parsing",
    )
    assert line["severity"] == "WARNING" and line["message"] == "job k: init -> parsing"
    assert line["logger"] == "shared.tracker" and line["time"].endswith("+00:00")
    assert (line["job"], line["old_state"], line["new_state"]) == (
        "b/e/d/20260101",
        "init",
        "parsing",
    )
    assert logs.TRACE_FIELD not in line


def test_the_trace_of_the_current_request_is_attached() -> None:
    formatter = logs.CloudLoggingFormatter("demo-p")
    with logs.request_trace({"X-Cloud-Trace-Context": f"{TRACE}/7;o=1"}) as trace:
        assert trace == TRACE
        line = emit(formatter, logging.INFO, "inside")
    assert line[logs.TRACE_FIELD] == f"projects/demo-p/traces/{TRACE}"
    assert logs.TRACE_FIELD not in emit(formatter, logging.INFO, "after the request")


def test_an_exception_goes_into_stack_trace() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(logs.CloudLoggingFormatter().format(record))
    assert line["severity"] == "ERROR" and "RuntimeError: boom" in line["stack_trace"]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_replaces_plain_handlers_and_sets_the_level(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = logging.StreamHandler(io.StringIO())
    root_logger.addHandler(plain)
    logs.setup({"LOG_FORMAT": "json", "LOG_LEVEL": "warning", "GOOGLE_CLOUD_PROJECT": "p"})
    handler = logs.setup(
        {"LOG_FORMAT": "json", "LOG_LEVEL": "warning", "GOOGLE_CLOUD_PROJECT": "p"}
    )
    assert plain not in root_logger.handlers
    assert [h for h in root_logger.handlers if isinstance(h, logs.StderrHandler)] == [handler]
    assert root_logger.level == logging.WARNING
    logging.getLogger("shared.x").info("not shown")
    logging.getLogger("shared.x").warning("shown")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [(x["severity"], x["message"]) for x in lines] == [("WARNING", "shown")]


def test_setup_writes_text_locally(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup({})
    logging.getLogger("shared.tracker").info("job k: init -> parsing")
    assert "INFO shared.tracker: job k: init -> parsing" in capsys.readouterr().err
