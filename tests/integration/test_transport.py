"""The HTTP transport against a real local HTTP server with scripted answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from local.emulator import free_port
from shared.transport import Transport, TransportError, needs_identity_token


class Scripted:
    """A server answering each request with the next (status, body) of a script."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.seen: list[str] = []
        script, seen = self.script, self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                seen.append(self.path)
                status, body = script.pop(0) if script else (200, "{}")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.server.shutdown()


def fast(url: str, attempts: int = 3) -> Transport:
    return Transport(url, attempts=attempts, backoff=0.001, max_backoff=0.01, timeout=5)


def test_retries_5xx_and_429_then_returns_the_answer(scripted: Scripted) -> None:
    scripted.script += [(503, '{"error": "busy"}'), (429, "{}"), (200, '{"ok": true}')]
    response = fast(scripted.url).request("POST", "/v2/job/update", call="update")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert len(scripted.seen) == 3


def test_4xx_is_returned_at_once(scripted: Scripted) -> None:
    scripted.script += [(410, '{"error": "no such job"}')]
    response = fast(scripted.url).request("POST", "/v2/job/update", call="update")
    assert response.status_code == 410
    assert len(scripted.seen) == 1


def test_listed_answers_are_not_retried(scripted: Scripted) -> None:
    scripted.script += [(503, "No job found. Try again.")]
    response = fast(scripted.url).request("POST", "/v2/job/next", call="next", answers=(503,))
    assert response.status_code == 503
    assert len(scripted.seen) == 1


def test_accept_returns_only_the_answers_it_recognises(scripted: Scripted) -> None:
    scripted.script += [
        (503, '{"error": "Firestore unavailable"}'),
        (503, "No job found. Try again."),
    ]
    response = fast(scripted.url).request(
        "POST",
        "/v2/job/next",
        call="next",
        answers=(503,),
        accept=lambda r: r.text.startswith("No job found"),
    )
    assert response.text == "No job found. Try again."
    assert len(scripted.seen) == 2


def test_gives_up_after_the_attempts_and_names_the_call(scripted: Scripted) -> None:
    scripted.script += [(500, '{"error": "internal error"}')] * 3
    with pytest.raises(TransportError) as caught:
        fast(scripted.url).request("POST", "/v2/job/heartbeat", call="heartbeat")
    assert caught.value.status == 500
    assert "heartbeat" in str(caught.value) and "internal error" in str(caught.value)
    assert len(scripted.seen) == 3


def test_connection_refused_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError) as caught:
        fast(url, attempts=2).request("POST", "/v2/job/next", call="next")
    assert "ConnectionError" in caught.value.reason and caught.value.status is None


def test_paths_join_under_the_base_url() -> None:
    transport = Transport("http://127.0.0.1:1/base", session=requests.Session())
    assert transport.url("/v2/job/next") == "http://127.0.0.1:1/base/v2/job/next"


@pytest.mark.parametrize(
    ("url", "token"),
    [
        ("http://127.0.0.1:8080", False),
        ("https://localhost:8443", False),
        ("https://gardener-api-abc-uc.a.run.app", True),
        ("http://tracker.internal", False),
    ],
)
def test_identity_tokens_only_for_remote_https(url: str, token: bool) -> None:
    assert needs_identity_token(url) is token


def test_bad_base_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        Transport("ftp://example.com")
