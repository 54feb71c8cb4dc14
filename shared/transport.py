"""HTTP transport to a tracker deployment: base URL, timeouts, retries, identity tokens.

One :class:`Transport` serves the parser client and the operator command line.
Deployed functions reject unauthenticated calls, so for an ``https`` URL that
is not on this machine every request carries a Google ID token whose audience
is the base URL (from Application Default Credentials: a service account key,
the metadata server, or ``gcloud auth application-default login`` with a
service account). The local stack (``http://127.0.0.1:...``) needs none.

Connection errors, 429 and 5xx answers are retried with exponential backoff
and full jitter (tenacity); every other answer is returned to the caller, who
decides what it means. Statuses listed in ``answers`` (the tracker's 503
"no job" for next-job) are returned at once, never retried; ``accept`` can
narrow that to the answers it recognises (so an overloaded 503 is still
retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from shared import defaults

log = logging.getLogger(__name__)

#: Hosts that never get an identity token: the local stack and tests.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: The OAuth scope impersonation asks for.
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

#: Answers worth asking again: throttled, or the server or a proxy in front failed.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransportError(Exception):
    """A call that failed for good: which call, against which URL, and why."""

    def __init__(
        self,
        call: str,
        url: str,
        reason: str,
        status: int | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(f"{call} ({url}) failed: {reason}")
        self.call = call
        self.url = url
        self.reason = reason
        self.status = status
        #: No connection could be made at all (refused, unknown host): no tracker there.
        self.unreachable = unreachable


class _RetryableStatus(Exception):
    """Internal: an answer with a status in :data:`RETRY_STATUSES`."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def needs_identity_token(base_url: str) -> bool:
    """Return whether calls to ``base_url`` need a Google ID token (https, not local)."""
    parts = urlsplit(base_url)
    return parts.scheme == "https" and (parts.hostname or "") not in LOCAL_HOSTS


def identity_session(audience: str, impersonate: str = "") -> requests.Session:
    """Return a session that adds (and refreshes) an ID token for ``audience``.

    With ``impersonate`` (a service account's email) the ID token is the
    service account's, minted with the caller's Application Default
    Credentials (a person's ``gcloud auth application-default login`` will
    do; they need the Service Account Token Creator role on it). Raises
    ``google.auth.exceptions.DefaultCredentialsError`` when there are no
    usable credentials.
    """
    import google.auth
    import google.auth.transport.requests as google_requests
    from google.auth import impersonated_credentials
    from google.oauth2 import id_token

    credentials: Any
    if impersonate:
        source, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        target = impersonated_credentials.Credentials(
            source_credentials=source,
            target_principal=impersonate,
            target_scopes=[CLOUD_PLATFORM],
        )
        credentials = impersonated_credentials.IDTokenCredentials(
            target, target_audience=audience, include_email=True
        )
    else:
        credentials = id_token.fetch_id_token_credentials(audience, google_requests.Request())
    return google_requests.AuthorizedSession(credentials)


def token_session(token: str) -> requests.Session:
    """Return a session that sends ``token`` (an ID token the caller got) as its bearer token."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.strip()}"
    return session


class Transport:
    """Calls one tracker base URL with a per-call timeout and bounded retries.

    ``attempts`` counts the first try; waits grow from ``backoff`` seconds,
    doubling, capped at ``max_backoff``, each drawn at random below its cap.
    ``identity_token`` forces ID tokens on or off; by default they are used
    when :func:`needs_identity_token` says so.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = defaults.CALL_TIMEOUT,
        attempts: int = defaults.CALL_ATTEMPTS,
        backoff: float = defaults.CALL_BACKOFF,
        max_backoff: float = defaults.CALL_MAX_BACKOFF,
        identity_token: bool | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base URL must be http:// or https://, not {base_url!r}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        use_token = needs_identity_token(base_url) if identity_token is None else identity_token
        if session is None:
            session = (
                identity_session(self.base_url.rstrip("/")) if use_token else requests.Session()
            )
        self.session = session

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` under the base URL."""
        return urljoin(self.base_url, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        call: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        answers: Collection[int] = (),
        data: Mapping[str, Any] | None = None,
        accept: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send one call, retrying transient failures; return the final response.

        ``call`` names the operation in errors and logs. A response whose
        status is retryable and not in ``answers`` is retried; when attempts
        run out, or the connection keeps failing, :class:`TransportError`
        says which call failed and why. Other responses, 4xx included, are
        returned as they are. ``accept`` narrows ``answers`` further: a
        retryable response is returned at once only if ``accept(response)``
        is true (the no-job 503 of next-job, but not an overloaded 503).
        ``data`` is sent as a form body, ``params`` in the query string.
        """
        url = self.url(path)

        def is_transient(exc: BaseException) -> bool:
            return isinstance(exc, (_RetryableStatus, requests.ConnectionError, requests.Timeout))

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s %s: attempt %d failed (%s); retrying",
                call,
                url,
                state.attempt_number,
                _describe(exc),
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
            stop=tenacity.stop_after_attempt(self.attempts),
            before_sleep=log_retry,
            reraise=True,
        )

        def send() -> requests.Response:
            response = self.session.request(
                method, url, params=params, data=data, json=json, timeout=self.timeout
            )
            status = response.status_code
            if status in RETRY_STATUSES and not (
                status in answers and (accept is None or accept(response))
            ):
                raise _RetryableStatus(response)
            return response

        try:
            return retrying(send)
        except _RetryableStatus as exc:
            raise TransportError(
                call,
                url,
                f"HTTP {exc.response.status_code} after {self.attempts} attempts: "
                f"{_body_message(exc.response)}",
                exc.response.status_code,
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransportError(
                call,
                url,
                f"{_describe(exc)} after {self.attempts} attempts",
                unreachable=isinstance(exc, requests.ConnectionError)
                and not isinstance(exc, requests.ReadTimeout),
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(call, url, _describe(exc)) from exc


def error_message(response: requests.Response) -> str:
    """Return the tracker's error message from a failed response (JSON ``error`` or text)."""
    return _body_message(response)


def _body_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()[:500]


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, _RetryableStatus):
        return f"HTTP {exc.response.status_code}"
    if exc is None:
        return "no answer"
    return f"{type(exc).__name__}: {exc}"
