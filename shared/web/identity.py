"""Who makes an admin request: a verified Google ID token, else an unverified name.

The platform's check of the token is not relied on: Cloud Run admits a
request on a token in ``X-Serverless-Authorization`` and passes
``Authorization`` on unchecked, so a bearer token is verified here against
Google's certificates. Refusals are :class:`~shared.web.errors.HttpError`:
401 for a token that does not verify, 503 when the certificates cannot be
fetched.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import flask
import requests

from shared.model import UTC
from shared.web.errors import HttpError

#: The statuses :func:`operator_of` can refuse a request with (a token that does not
#: verify; Google's certificates out of reach), for the OpenAPI document.
STATUSES = (401, 503)

#: Who an action is recorded as when the request names no one.
ANONYMOUS = "anonymous"

#: Google's certificates that sign ID tokens, by key id (PEM).
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"

#: Issuers of Google ID tokens.
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})

#: How long fetched certificates are used before they are fetched again (Google rotates them daily).
CERTS_TTL = timedelta(hours=1)

#: Marks a name no one has verified: the ``X-Operator`` header, or the local user.
UNVERIFIED = " (unverified)"

#: Returns the certificates, by key id, that may have signed an ID token.
Certs = Callable[[], Mapping[str, str]]

_OPERATOR_RE = re.compile(r"[\w.@+:/ -]{1,200}")

_certs_cache: tuple[datetime, Mapping[str, str]] | None = None


def google_certs() -> Mapping[str, str]:
    """Return Google's ID-token signing certificates, fetched at most once per :data:`CERTS_TTL`."""
    global _certs_cache
    now = datetime.now(UTC)
    if _certs_cache is None or now - _certs_cache[0] > CERTS_TTL:
        response = requests.get(GOOGLE_CERTS_URL, timeout=10)
        response.raise_for_status()
        _certs_cache = (now, response.json())
    return _certs_cache[1]


def verified_email(token: str, host: str, certs: Certs | None = None) -> str:
    """Return the e-mail of a Google ID token that is valid for a request to ``host``.

    Checked: the signature against ``certs`` (default :func:`google_certs`),
    expiry, the issuer (Google), an audience that is an https URL on
    ``host`` (a token minted for another service is refused) and a verified
    e-mail. Raises :class:`HttpError` (401) saying what is wrong.
    """
    from google.auth import jwt

    try:
        known = (certs or google_certs)()
    except requests.RequestException as exc:
        raise HttpError(
            503, f"cannot fetch Google's certificates to verify the ID token: {exc}"
        ) from None
    try:
        claims = jwt.decode(token, certs=known, clock_skew_in_seconds=10)
    except (ValueError, KeyError) as exc:
        raise HttpError(401, f"the ID token is not valid: {exc}") from None
    problem = ""
    audience = claims.get("aud")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        problem = f"issued by {claims.get('iss')!r}, not Google"
    elif not isinstance(audience, str) or urlsplit(audience)[:2] != ("https", host.lower()):
        problem = f"its audience {audience!r} is not this service (https://{host})"
    elif not isinstance(claims.get("email"), str) or claims.get("email_verified") is False:
        problem = "it carries no verified email"
    elif not _OPERATOR_RE.fullmatch(claims["email"]):
        problem = "its email is not a valid operator name"
    if problem:
        raise HttpError(401, f"the ID token is not valid: {problem}")
    return str(claims["email"])


def operator(
    authorization: str, x_operator: str, host: str = "", certs: Certs | None = None
) -> str:
    """Return who makes a request, as recorded on the audit.

    A bearer token must be a Google ID token (:func:`verified_email`, which
    refuses any other with 401); its e-mail is the operator. Without a token
    the name is only a claim and is marked :data:`UNVERIFIED`: the
    ``X-Operator`` header, else (not deployed, no ``K_SERVICE``) the local
    user, else ``anonymous``.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if authorization.strip():
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, 'Authorization must be "Bearer <Google ID token>"')
        return verified_email(token.strip(), host, certs)
    name = x_operator.strip()
    if not _OPERATOR_RE.fullmatch(name):
        name = _local_user() if not os.environ.get("K_SERVICE") else ""
    return name + UNVERIFIED if name else ANONYMOUS


def operator_of(request: flask.Request) -> str:
    """Return who makes ``request`` (:func:`operator` of its headers and host)."""
    return operator(
        request.headers.get("Authorization", ""),
        request.headers.get("X-Operator", ""),
        request.host,
    )


def _local_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return ""
    return name if _OPERATOR_RE.fullmatch(name) else ""
