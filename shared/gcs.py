"""Archive files in GCS: the only module of the library that talks to GCS.

The tracker asks one question of GCS: does a job have archive files, that is,
is there at least one object under ``gs://<bucket>/<experiment>/<datatype>/YYYY/MM/DD/``?
:class:`ArchiveLister` answers it with a single list request of at most one
object. Transient GCS errors become :class:`ArchiveUnavailable`, an
:class:`~shared.errors.Unavailable`, as transient Firestore errors become
``StoreUnavailable`` in :mod:`shared.store.errors`.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from shared.errors import Unavailable

if TYPE_CHECKING:  # imported with the client, at the first request that needs GCS
    import google.cloud.storage as storage

log = logging.getLogger(__name__)

#: GCS and transport errors that say "try again later", not "your request is wrong".
TRANSIENT: tuple[type[BaseException], ...] = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.TooManyRequests,
    gexc.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    auth_exc.TransportError,
)


class ArchiveUnavailable(Unavailable):
    """GCS did not answer, or asked to be retried later, while listing archive files."""

    def __init__(self, bucket: str, prefix: str, cause: BaseException) -> None:
        super().__init__(f"GCS unavailable listing gs://{bucket}/{prefix}: {cause}")
        self.bucket = bucket
        self.prefix = prefix


def settle_environment(session: Any) -> None:
    """Have a requests ``session`` read its environment settings once, not at every request.

    With ``trust_env`` a session looks up proxies (every environment variable),
    ``~/.netrc`` and the CA bundle variables at each request: about a quarter of
    the CPU of a one-object list. Without proxies in the environment, the same
    CA bundle (``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``) is set on the
    session once and the lookups are switched off; with proxies (whose
    ``no_proxy`` is matched per URL), nothing changes. Credentials come from
    the client, never from ``~/.netrc``.
    """
    if not getattr(session, "trust_env", False) or urllib.request.getproxies():
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:  # what each request would have taken from the environment
        session.verify = bundle
    session.trust_env = False


class ArchiveLister:
    """Answers whether archive files exist under a bucket prefix; counts its list requests.

    It takes over ``client``: the client's background bucket-metadata fetches
    are switched off, so each check is exactly the list request it counts.

    ``timeout`` bounds each HTTP request (seconds); ``deadline`` bounds all the
    attempts of one check, retried on transient errors with the storage
    library's default policy (backoff from 1 s).
    """

    def __init__(
        self, client: storage.Client, timeout: float = 10.0, deadline: float = 30.0
    ) -> None:
        self._client = client
        # google-cloud-storage >= 3.11 fetches a bucket's metadata (storage.buckets.get)
        # in a background thread on a client's first object operation on it, only
        # to label tracing spans (googleapis/google-cloud-python#17650): a GCS call
        # not asked for, and denied to object-only roles. Switch it off for this
        # client; DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true does it process-wide.
        if getattr(client, "_bucket_metadata_cache", None) is not None:
            client._bucket_metadata_cache = None
        settle_environment(client._http)
        self.timeout = timeout
        self.deadline = deadline
        from google.cloud.storage.retry import DEFAULT_RETRY  # with the client, not at import

        self._retry = DEFAULT_RETRY.with_timeout(deadline)
        self._lock = threading.Lock()
        #: List requests (pages) asked for so far; retries of one request count once.
        self.calls: int = 0

    def _count(self, n: int) -> None:
        with self._lock:
            self.calls += n

    def has_files(self, bucket: str, prefix: str) -> bool:
        """Return True iff at least one object exists under ``gs://bucket/prefix``.

        ``prefix`` must end in ``/`` so that ``2019/01/02/`` never matches
        ``2019/01/02x/`` (ValueError otherwise). A missing bucket answers False
        and logs a warning; a transient error raises :class:`ArchiveUnavailable`.
        """
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not prefix.endswith("/"):
            raise ValueError(f"prefix {prefix!r} must end in '/'")
        blobs = None
        try:
            blobs = self._client.list_blobs(
                bucket, prefix=prefix, max_results=1, timeout=self.timeout, retry=self._retry
            )
            # One page of at most one object; a further page is asked for only
            # if GCS answers an empty page with a continuation token.
            return next(iter(blobs), None) is not None
        except gexc.NotFound:
            log.warning(
                "bucket %s does not exist: no archive files under gs://%s/%s",
                bucket,
                bucket,
                prefix,
            )
            return False
        except TRANSIENT as exc:
            raise ArchiveUnavailable(bucket, prefix, exc) from exc
        finally:
            # Pages fetched; a request that failed was still made.
            self._count(max(1, getattr(blobs, "page_number", 0)))
