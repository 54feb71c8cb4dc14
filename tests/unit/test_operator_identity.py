"""Who an admin request is recorded as: only a Google ID token whose signature checks names an operator."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping

import pytest

from shared.web.errors import HttpError
from shared.web.identity import operator
from tests.idtokens import (
    AUDIENCE,
    CERTS,
    HOST,
    IAP_AUDIENCE,
    IAP_KEYS,
    OTHER_IAP_KEY,
    OTHER_KEY,
    iap_signed,
    signed,
    unsigned,
)

#: The gcloud CLI's OAuth client: the audience of a person's `gcloud auth print-identity-token`.
GCLOUD = "32555940559.apps.googleusercontent.com"


def forged_signature(token: str) -> str:
    """``token`` with its claims replaced by mallory's, the signature kept."""
    head, _, sig = token.split(".")
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": "mallory@example.org",
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{body}.{sig}"


MALLORY = {
    "iss": "https://accounts.google.com",
    "aud": AUDIENCE,
    "email": "mallory@example.org",
    "email_verified": True,
    "iat": 1,
    "exp": 9999999999,
}
HOUR_AGO = int(dt.datetime.now(dt.UTC).timestamp()) - 3600

REFUSED = [
    ("unsigned", f"Bearer {unsigned(MALLORY)}", "the ID token is not valid"),
    (
        "old-style-unverified",
        "Bearer eyJhbGciOiJSUzI1NiJ9."
        + base64.urlsafe_b64encode(json.dumps(MALLORY).encode()).decode().rstrip("=")
        + ".sig",
        "the ID token is not valid",
    ),
    (
        "claims-swapped-under-a-real-signature",
        f"Bearer {forged_signature(signed())}",
        "the ID token is not valid",
    ),
    (
        "signed-by-another-key",
        f"Bearer {signed(OTHER_KEY, email='mallory@example.org')}",
        "the ID token is not valid",
    ),
    ("unknown-key-id", f"Bearer {signed(kid='kid-9')}", "the ID token is not valid"),
    ("expired", f"Bearer {signed(iat=HOUR_AGO - 3600, exp=HOUR_AGO)}", "the ID token is not valid"),
    ("not-google", f"Bearer {signed(iss='https://evil.example.org')}", "not Google"),
    ("other-client-audience", f"Bearer {signed(aud='1-x.apps.googleusercontent.com')}", "accepted"),
    (
        "minted-for-another-service",
        f"Bearer {signed(aud='https://other.a.run.app')}",
        "is not this service",
    ),
    ("plain-http-audience", f"Bearer {signed(aud=f'http://{HOST}')}", "is not this service"),
    ("no-email", f"Bearer {signed(email=None)}", "no verified email"),
    ("email-not-verified", f"Bearer {signed(email_verified=False)}", "no verified email"),
    ("not-a-jwt", "Bearer not-a-token", "the ID token is not valid"),
    ("basic-auth", "Basic YWxpY2U6cHc=", "Bearer <Google ID token>"),
    ("empty-bearer", "Bearer ", "Bearer <Google ID token>"),
]


@pytest.mark.parametrize(
    ("authorization", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_token_that_does_not_verify_is_refused_whatever_it_claims(authorization, message):
    with pytest.raises(HttpError) as refused:
        operator(authorization, "mallory@example.org", HOST, certs=lambda: CERTS)
    assert refused.value.status == 401 and message in str(refused.value)


@pytest.mark.parametrize(
    ("authorization", "header", "deployed", "who"),
    [
        (f"Bearer {signed()}", "", False, "ops@example.org"),
        (f"Bearer {signed()}", "mallory", False, "ops@example.org"),  # the header is ignored
        (f"Bearer {signed(aud=AUDIENCE + '/')}", "", True, "ops@example.org"),
        (f"Bearer {signed(iss='accounts.google.com')}", "", True, "ops@example.org"),
        ("", "alice", False, "alice (unverified)"),
        ("", "mallory@example.org", True, "mallory@example.org (unverified)"),
        ("", " alice\n", False, "alice (unverified)"),
        ("", "", False, "localuser (unverified)"),
        ("", "bad\nname", False, "localuser (unverified)"),
        ("", "x" * 300, False, "localuser (unverified)"),
        ("", "", True, "anonymous"),
        ("", "<script>", True, "anonymous"),
    ],
    ids=[
        "signed",
        "signed-header-ignored",
        "audience-with-slash",
        "bare-issuer",
        "header",
        "header-deployed",
        "header-trimmed",
        "local-user",
        "bad-header-local",
        "long-header-local",
        "deployed-nothing",
        "bad-header-deployed",
    ],
)
def test_only_a_verified_token_names_the_operator_anything_else_is_marked_unverified(
    monkeypatch, authorization, header, deployed, who
):
    monkeypatch.setattr("shared.web.identity.getpass.getuser", lambda: "localuser")
    if deployed:
        monkeypatch.setenv("K_SERVICE", "admin")
    else:
        monkeypatch.delenv("K_SERVICE", raising=False)
    assert operator(authorization, header, HOST, certs=lambda: CERTS) == who


def test_certificates_that_cannot_be_fetched_answer_503(monkeypatch):
    import requests

    def down() -> Mapping[str, str]:
        raise requests.ConnectionError("no route to host")

    with pytest.raises(HttpError) as refused:
        operator(f"Bearer {signed()}", "", HOST, certs=down)
    assert refused.value.status == 503 and "cannot fetch Google's certificates" in str(
        refused.value
    )


# --- IAP and a person's own token ------------------------------------------------------------

NOW = int(dt.datetime.now(dt.UTC).timestamp())

#: name, IAP_AUDIENCE, IAP's header, Authorization, X-Operator, who (or the 401's message).
CASES = [
    ("iap-valid", IAP_AUDIENCE, iap_signed(), "", "", "ops@example.org"),
    (
        "iap-wins-over-a-bearer-and-a-header",
        IAP_AUDIENCE,
        iap_signed(),
        "Bearer x",
        "eve",
        "ops@example.org",
    ),
    (
        "iap-wrong-audience",
        IAP_AUDIENCE,
        iap_signed(aud="/projects/123456789/locations/us-central1/services/other"),
        "",
        "",
        "401: its audience '/projects/123456789/locations/us-central1/services/other' is not this service",
    ),
    (
        "iap-wrong-issuer",
        IAP_AUDIENCE,
        iap_signed(iss="https://accounts.google.com"),
        "",
        "",
        "401: not IAP",
    ),
    (
        "iap-expired",
        IAP_AUDIENCE,
        iap_signed(iat=NOW - 1200, exp=NOW - 600),
        "",
        "",
        "401: IAP assertion",
    ),
    ("iap-other-key", IAP_AUDIENCE, iap_signed(OTHER_IAP_KEY), "", "", "401: IAP assertion"),
    ("iap-unknown-key-id", IAP_AUDIENCE, iap_signed(kid="iap-9"), "", "", "401: IAP assertion"),
    ("iap-not-es256", IAP_AUDIENCE, signed(aud=IAP_AUDIENCE), "", "", "401: not ES256"),
    ("iap-no-email", IAP_AUDIENCE, iap_signed(email=None), "", "", "401: no verified email"),
    ("iap-garbage", IAP_AUDIENCE, "not-a-jwt", "", "", "401: IAP assertion"),
    (
        "iap-missing-header-when-configured",
        IAP_AUDIENCE,
        "",
        f"Bearer {signed()}",
        "alice",
        "401: did not come through IAP",
    ),
    (
        "iap-header-where-iap-is-not-configured",
        "",
        iap_signed(),
        "",
        "alice",
        "401: IAP_AUDIENCE is unset",
    ),
    ("gcloud-audience-user-token", "", "", f"Bearer {signed(aud=GCLOUD)}", "", "ops@example.org"),
    (
        "other-audience-refused",
        "",
        "",
        f"Bearer {signed(aud='999-other.apps.googleusercontent.com')}",
        "",
        "401: is not this service",
    ),
    (
        "service-account-for-a-person",
        "",
        "",
        f"Bearer {signed(email='ops@p.iam.gserviceaccount.com')}",
        "alice@example.org",
        "ops@p.iam.gserviceaccount.com for alice@example.org (claimed)",
    ),
    (
        "service-account-alone",
        "",
        "",
        f"Bearer {signed(email='ops@p.iam.gserviceaccount.com')}",
        "",
        "ops@p.iam.gserviceaccount.com",
    ),
    ("person-header-ignored", "", "", f"Bearer {signed()}", "mallory", "ops@example.org"),
]


@pytest.mark.parametrize(
    ("iap_audience", "assertion", "authorization", "header", "who"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_iap_assertions_and_tokens_name_the_operator_or_are_refused(
    monkeypatch, iap_audience, assertion, authorization, header, who
):
    monkeypatch.setenv("K_SERVICE", "admin")

    def name() -> str:
        return operator(
            authorization,
            header,
            HOST,
            certs=lambda: CERTS,
            iap_assertion=assertion,
            iap_audience=iap_audience,
            keys=lambda: IAP_KEYS,
        )

    if who.startswith("401: "):
        with pytest.raises(HttpError) as refused:
            name()
        assert refused.value.status == 401 and who[5:] in str(refused.value)
    else:
        assert name() == who


def test_a_gcloud_token_is_refused_when_no_client_audience_is_accepted():
    with pytest.raises(HttpError) as refused:
        operator(f"Bearer {signed(aud=GCLOUD)}", "", HOST, certs=lambda: CERTS, audiences=())
    assert refused.value.status == 401 and "is not this service" in str(refused.value)


def test_iap_keys_that_cannot_be_fetched_answer_503():
    import requests

    def down() -> Mapping[str, str]:
        raise requests.ConnectionError("no route to host")

    with pytest.raises(HttpError) as refused:
        operator("", "", HOST, iap_assertion=iap_signed(), iap_audience=IAP_AUDIENCE, keys=down)
    assert refused.value.status == 503 and "cannot fetch IAP's keys" in str(refused.value)


def test_keys_are_fetched_with_a_deadline_and_cached(monkeypatch):
    from shared.web import identity

    calls: list[tuple[str, float]] = []

    class Answer:
        def raise_for_status(self) -> None:
            pass

        def json(self) -> dict[str, str]:
            return dict(IAP_KEYS)

    def get(url: str, timeout: float) -> Answer:
        calls.append((url, timeout))
        return Answer()

    monkeypatch.setattr(identity, "_cache", {})
    monkeypatch.setattr("requests.get", get)
    assert identity.iap_keys() == IAP_KEYS and identity.iap_keys() == IAP_KEYS
    assert calls == [(identity.IAP_KEYS_URL, 10.0)]
    assert identity.iap_email(iap_signed(), IAP_AUDIENCE) == "ops@example.org"


# --- the token Cloud Run checked, whose signature it removed ---------------------------------


def stripped(token: str) -> str:
    """``token`` as Cloud Run passes on a token it has verified: its signature replaced."""
    return token.rsplit(".", 1)[0] + ".SIGNATURE_REMOVED_BY_GOOGLE"


#: name, Authorization, X-Serverless-Authorization, X-Operator, who (or the 401's message).
PLATFORM = [
    ("person-gcloud-token", f"Bearer {stripped(signed(aud=GCLOUD))}", "", "", "ops@example.org"),
    ("token-for-the-url", f"Bearer {stripped(signed())}", "", "eve", "ops@example.org"),
    (
        "service-account-for-a-person",
        f"Bearer {stripped(signed(email='sa@p.iam.gserviceaccount.com'))}",
        "",
        "alice@example.org",
        "sa@p.iam.gserviceaccount.com for alice@example.org (claimed)",
    ),
    (
        "serverless-header-is-the-checked-one",
        f"Bearer {signed(email='mallory@example.org')}",
        f"Bearer {stripped(signed())}",
        "",
        "ops@example.org",
    ),
    (
        "unchecked-authorization-cannot-pose-as-checked",
        f"Bearer {stripped(signed(email='mallory@example.org'))}",
        f"Bearer {signed()}",
        "",
        "ops@example.org",
    ),
    (
        "serverless-header-not-bearer",
        f"Bearer {signed()}",
        "Basic YWxpY2U6cHc=",
        "",
        "401: X-Serverless-Authorization must be",
    ),
    (
        "expired",
        f"Bearer {stripped(signed(iat=NOW - 7200, exp=NOW - 3600))}",
        "",
        "",
        "401: it has expired",
    ),
    ("no-expiry", f"Bearer {stripped(signed(exp=None))}", "", "", "401: it has no expiry"),
    (
        "other-audience",
        f"Bearer {stripped(signed(aud='https://other.a.run.app'))}",
        "",
        "",
        "401: is not this service",
    ),
    (
        "not-google",
        f"Bearer {stripped(signed(iss='https://evil.example'))}",
        "",
        "",
        "401: not Google",
    ),
    ("no-email", f"Bearer {stripped(signed(email=None))}", "", "", "401: no verified email"),
    ("garbage", "Bearer x.y.SIGNATURE_REMOVED_BY_GOOGLE", "", "", "401: the ID token is not valid"),
]


@pytest.mark.parametrize(
    ("authorization", "serverless", "header", "who"),
    [c[1:] for c in PLATFORM],
    ids=[c[0] for c in PLATFORM],
)
def test_on_cloud_run_the_token_it_checked_names_the_operator(
    monkeypatch, authorization, serverless, header, who
):
    monkeypatch.setenv("K_SERVICE", "admin")

    def name() -> str:
        return operator(
            authorization,
            header,
            HOST,
            certs=lambda: CERTS,
            serverless_authorization=serverless,
        )

    if who.startswith("401: "):
        with pytest.raises(HttpError) as refused:
            name()
        assert refused.value.status == 401 and who[5:] in str(refused.value)
    else:
        assert name() == who


def test_a_token_without_its_signature_is_refused_off_cloud_run(monkeypatch):
    monkeypatch.delenv("K_SERVICE", raising=False)
    with pytest.raises(HttpError) as refused:
        operator(f"Bearer {stripped(signed())}", "", HOST, certs=lambda: CERTS)
    assert refused.value.status == 401 and "this is not Cloud Run" in str(refused.value)


def test_the_request_s_serverless_header_is_the_token_read(monkeypatch):
    import flask

    from shared.web.identity import operator_of

    monkeypatch.setenv("K_SERVICE", "admin")
    app = flask.Flask(__name__)
    headers = {
        "Authorization": f"Bearer {signed(email='mallory@example.org')}",
        "X-Serverless-Authorization": f"Bearer {stripped(signed())}",
    }
    with app.test_request_context("/admin/jobs", headers=headers, base_url=AUDIENCE):
        assert operator_of(flask.request) == "ops@example.org"
