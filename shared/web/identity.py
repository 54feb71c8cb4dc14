"""Who makes an admin request: IAP's signed assertion, a Google ID token, else a name.

Three ways in, strongest first:

- **Identity-Aware Proxy** (``IAP_AUDIENCE`` set): IAP signs every request it lets
  through with ``X-Goog-IAP-JWT-Assertion`` (ES256, IAP's keys, issuer
  ``https://cloud.google.com/iap``, audience the service). It is verified here and
  its e-mail is the operator; a request without it did not come through IAP and is
  refused (never named by an unverified header instead).
- **A bearer Google ID token**, the one Cloud Run checked: ``X-Serverless-Authorization``
  when the request carries it (Cloud Run then checks that one and passes
  ``Authorization`` on unchecked, so ``Authorization`` is ignored), else
  ``Authorization``. Cloud Run replaces the signature of a token it has verified with
  ``SIGNATURE_REMOVED_BY_GOOGLE`` (so that the service cannot replay it); on Cloud Run
  (``K_SERVICE`` set) such a token's claims are the platform's verified ones, which
  holds because no function admits unauthenticated callers. A token whose signature
  is intact is verified here against Google's certificates. Either way its issuer,
  expiry, audience (this service's URL or one of the OAuth client IDs of
  ``OPERATOR_TOKEN_AUDIENCES``, by default the gcloud CLI's, so that a person's own
  ``gcloud auth print-identity-token`` works) and verified e-mail are checked.
- Otherwise the ``X-Operator`` header or the local user, marked unverified.

Refusals are :class:`~shared.web.errors.HttpError`: 401 for an assertion or token
that does not verify, 503 when the keys cannot be fetched.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import flask
import requests

from shared import defaults
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

#: IAP's public keys, by key id (PEM), the same keys as ``public_key-jwk`` in the form
#: google-auth verifies without a JWK library.
IAP_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key"

#: The issuer of IAP's signed headers.
IAP_ISSUER = "https://cloud.google.com/iap"

#: The header IAP signs each request it lets through with.
IAP_HEADER = "X-Goog-IAP-JWT-Assertion"

#: The header Cloud Run checks instead of ``Authorization`` when a request carries it.
SERVERLESS_HEADER = "X-Serverless-Authorization"

#: What Cloud Run puts in place of the signature of an ID token it has verified.
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"

#: Seconds of clock skew allowed on an ID token's expiry.
TOKEN_CLOCK_SKEW = 10

#: Clock skew allowed on an IAP assertion's times (IAP's documentation allows 30 s).
IAP_CLOCK_SKEW = 30

#: How long fetched certificates and keys are used before they are fetched again.
CERTS_TTL = defaults.IDENTITY_KEYS_TTL

#: Marks a name no one has verified: the ``X-Operator`` header, or the local user.
UNVERIFIED = " (unverified)"

#: Marks the person a verified service account says it acts for (``X-Operator``): a claim.
CLAIMED = " (claimed)"

#: Returns the certificates or public keys, by key id, that may have signed a token.
Certs = Callable[[], Mapping[str, str]]

_OPERATOR_RE = re.compile(r"[\w.@+:/ -]{1,200}")

_cache: dict[str, tuple[datetime, Mapping[str, str]]] = {}


def _fetch_keys(url: str) -> Mapping[str, str]:
    """Return the key-id → PEM mapping at ``url``, fetched at most once per :data:`CERTS_TTL`."""
    now = datetime.now(UTC)
    cached = _cache.get(url)
    if cached is None or now - cached[0] > CERTS_TTL:
        response = requests.get(url, timeout=defaults.IDENTITY_KEYS_TIMEOUT)
        response.raise_for_status()
        keys = response.json()
        if not isinstance(keys, dict):
            raise requests.RequestException(f"{url} answered no key mapping")
        cached = _cache[url] = (now, keys)
    return cached[1]


def google_certs() -> Mapping[str, str]:
    """Return Google's ID-token signing certificates, fetched at most once per :data:`CERTS_TTL`."""
    return _fetch_keys(GOOGLE_CERTS_URL)


def iap_keys() -> Mapping[str, str]:
    """Return IAP's signing keys, fetched at most once per :data:`CERTS_TTL`."""
    return _fetch_keys(IAP_KEYS_URL)


def _decode(token: str, keys: Certs, source: str, what: str, clock_skew: int) -> Mapping[str, Any]:
    """The claims of ``token`` once its signature and times check; 401/503 otherwise."""
    from google.auth import jwt

    try:
        known = keys()
    except requests.RequestException as exc:
        raise HttpError(503, f"cannot fetch {source} to verify the {what}: {exc}") from None
    try:
        claims: Mapping[str, Any] = jwt.decode(token, certs=known, clock_skew_in_seconds=clock_skew)
    except (ValueError, KeyError) as exc:
        raise HttpError(401, f"the {what} is not valid: {exc}") from None
    return claims


def _email(claims: Mapping[str, Any]) -> str:
    """The claims' e-mail if it is verified and a valid operator name, else ""."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return ""
    return email if _OPERATOR_RE.fullmatch(email) else ""


def _operator_email(claims: Mapping[str, Any], what: str, checks: list[tuple[bool, str]]) -> str:
    """The claims' e-mail, after ``checks`` (a refusal if true, and why) and the e-mail's own.

    Raises :class:`HttpError` (401) naming ``what`` and the first check that fails.
    """
    for refused, problem in [*checks, (not _email(claims), "it carries no verified email")]:
        if refused:
            raise HttpError(401, f"the {what} is not valid: {problem}")
    return str(claims["email"])


def iap_email(assertion: str, audience: str, keys: Certs | None = None) -> str:
    """Return the e-mail of IAP's signed assertion for ``audience``.

    Checked: the algorithm (ES256), the signature against ``keys`` (default
    :func:`iap_keys`), expiry and issue time (30 s of skew), the issuer (IAP), the
    audience (this service's, ``IAP_AUDIENCE``) and an e-mail. Raises
    :class:`HttpError` (401) saying what is wrong, 503 without keys.
    """
    from google.auth import jwt

    what = f"IAP assertion ({IAP_HEADER})"
    try:
        algorithm = jwt.decode_header(assertion).get("alg")
    except (ValueError, TypeError) as exc:
        raise HttpError(401, f"the {what} is not valid: {exc}") from None
    if algorithm != "ES256":
        raise HttpError(401, f"the {what} is not valid: signed with {algorithm!r}, not ES256")
    claims = _decode(assertion, keys or iap_keys, "IAP's keys", what, IAP_CLOCK_SKEW)
    issuer, aud = claims.get("iss"), claims.get("aud")
    return _operator_email(
        claims,
        what,
        [
            (issuer != IAP_ISSUER, f"issued by {issuer!r}, not IAP ({IAP_ISSUER})"),
            (aud != audience, f"its audience {aud!r} is not this service ({audience})"),
        ],
    )


def _platform_claims(token: str) -> Mapping[str, Any]:
    """The claims of a token Cloud Run verified and removed the signature of; 401 off Cloud Run."""
    from google.auth import jwt

    if not os.environ.get("K_SERVICE"):
        raise HttpError(
            401,
            f"the ID token is not valid: its signature is {SIGNATURE_REMOVED}, which only "
            "Cloud Run may vouch for, and this is not Cloud Run",
        )
    try:
        claims: Mapping[str, Any] = jwt.decode(token, verify=False)
    except (ValueError, KeyError) as exc:
        raise HttpError(401, f"the ID token is not valid: {exc}") from None
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or isinstance(expiry, bool):
        raise HttpError(401, "the ID token is not valid: it has no expiry")
    if expiry + TOKEN_CLOCK_SKEW < datetime.now(UTC).timestamp():
        raise HttpError(401, "the ID token is not valid: it has expired")
    return claims


def verified_email(
    token: str,
    host: str,
    certs: Certs | None = None,
    audiences: Collection[str] = defaults.OPERATOR_TOKEN_AUDIENCES,
) -> str:
    """Return the e-mail of a Google ID token that is valid for a request to ``host``.

    The token is the one Cloud Run checked. Its signature is verified against
    ``certs`` (default :func:`google_certs`) with its expiry, unless Cloud Run
    verified it and replaced the signature with :data:`SIGNATURE_REMOVED` (taken
    as verified on Cloud Run only, see the module's note). Then checked: the issuer
    (Google), an audience that is an https URL on ``host`` or one of ``audiences``
    (OAuth client IDs a person's own token is minted for: the token names its
    holder, and Cloud Run let the request in only for an account with the invoker
    role), and a verified e-mail. Raises :class:`HttpError` (401) saying what is
    wrong.
    """
    if token.count(".") == 2 and token.rsplit(".", 1)[1] == SIGNATURE_REMOVED:
        claims = _platform_claims(token)
    else:
        claims = _decode(
            token, certs or google_certs, "Google's certificates", "ID token", TOKEN_CLOCK_SKEW
        )
    issuer, audience = claims.get("iss"), claims.get("aud")
    ours = isinstance(audience, str) and (
        urlsplit(audience)[:2] == ("https", host.lower()) or audience in audiences
    )
    accepted = ", ".join([f"https://{host}", *audiences])
    return _operator_email(
        claims,
        "ID token",
        [
            (issuer not in GOOGLE_ISSUERS, f"issued by {issuer!r}, not Google"),
            (not ours, f"its audience {audience!r} is not this service (accepted: {accepted})"),
        ],
    )


def operator(
    authorization: str,
    x_operator: str,
    host: str = "",
    certs: Certs | None = None,
    *,
    iap_assertion: str = "",
    iap_audience: str = "",
    keys: Certs | None = None,
    audiences: Collection[str] = defaults.OPERATOR_TOKEN_AUDIENCES,
    serverless_authorization: str = "",
) -> str:
    """Return who makes a request, as recorded on the audit.

    With IAP configured (``iap_audience``), only IAP's assertion counts
    (:func:`iap_email`); without it the request is refused (401), as is an
    assertion where IAP is not configured (it cannot be checked to be for this
    service). Otherwise the bearer token Cloud Run checked
    (``serverless_authorization`` when given, else ``authorization``, which Cloud
    Run then passes on unchecked) must be a Google ID token
    (:func:`verified_email`, which refuses any other with 401); its e-mail is the
    operator, and a service account's is followed by the person it says it acts
    for (``X-Operator``), marked :data:`CLAIMED`. Without a token the name is only
    a claim and is marked :data:`UNVERIFIED`: the ``X-Operator`` header, else (not
    deployed, no ``K_SERVICE``) the local user, else ``anonymous``.
    """
    name = x_operator.strip()
    if not _OPERATOR_RE.fullmatch(name):
        name = ""
    if iap_audience:
        if not iap_assertion.strip():
            raise HttpError(
                401,
                f"this service is behind IAP but the request carries no {IAP_HEADER}: "
                "it did not come through IAP; call its URL with an identity IAP admits",
            )
        return iap_email(iap_assertion.strip(), iap_audience, keys)
    if iap_assertion.strip():
        raise HttpError(
            401,
            f"the request carries {IAP_HEADER} but this service is not configured for IAP "
            "(IAP_AUDIENCE is unset), so it cannot be checked",
        )
    header, credentials = SERVERLESS_HEADER, serverless_authorization.strip()
    if not credentials:
        header, credentials = "Authorization", authorization.strip()
    scheme, _, token = credentials.partition(" ")
    if credentials:
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, f'{header} must be "Bearer <Google ID token>"')
        email = verified_email(token.strip(), host, certs, audiences)
        if name and name != email and email.endswith(".gserviceaccount.com"):
            return f"{email} for {name}{CLAIMED}"
        return email
    if not name:
        name = _local_user() if not os.environ.get("K_SERVICE") else ""
    return name + UNVERIFIED if name else ANONYMOUS


def operator_of(
    request: flask.Request,
    iap_audience: str = "",
    audiences: Collection[str] = defaults.OPERATOR_TOKEN_AUDIENCES,
) -> str:
    """Return who makes ``request`` (:func:`operator` of its headers and host)."""
    return operator(
        request.headers.get("Authorization", ""),
        request.headers.get("X-Operator", ""),
        request.host,
        iap_assertion=request.headers.get(IAP_HEADER, ""),
        iap_audience=iap_audience,
        audiences=audiences,
        serverless_authorization=request.headers.get(SERVERLESS_HEADER, ""),
    )


def _local_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return ""
    return name if _OPERATOR_RE.fullmatch(name) else ""
