"""Who an admin request is recorded as: only a Google ID token whose signature checks names an operator."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping

import pytest

from shared.web.errors import HttpError
from shared.web.identity import operator
from tests.idtokens import AUDIENCE, CERTS, HOST, OTHER_KEY, signed, unsigned


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
