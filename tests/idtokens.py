"""Google-style ID tokens signed with a key made here, and the certificates that verify them."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

HOST = "gardener-admin-abc123-uc.a.run.app"
AUDIENCE = f"https://{HOST}"


def _key_and_cert() -> tuple[bytes, str]:
    """A fresh RSA key (PEM) and a self-signed certificate of it (PEM), as Google publishes them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = _key_and_cert()
OTHER_KEY, _ = _key_and_cert()
CERTS: Mapping[str, str] = {"kid-1": CERT}


def signed(key: bytes = KEY, kid: str = "kid-1", **changes: Any) -> str:
    """A Google-style ID token signed with ``key``; ``changes`` replace or (None) drop claims."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": "ops@example.org",
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "sub": "123",
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    token: bytes = jwt.encode(crypt.RSASigner.from_string(key, kid), claims)
    return token.decode()


def unsigned(claims: dict[str, Any]) -> str:
    """A token with the given claims and no signature at all (``alg: none``)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# --- IAP's signed headers ---------------------------------------------------------------------

#: What IAP_AUDIENCE is for IAP on the Cloud Run service of the admin function.
IAP_AUDIENCE = "/projects/123456789/locations/us-central1/services/gardener-admin"


def _ec_key() -> tuple[bytes, str]:
    """A fresh P-256 key (PEM) and its public key (PEM), as IAP publishes its keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


IAP_KEY, IAP_PUBLIC = _ec_key()
OTHER_IAP_KEY, _ = _ec_key()
IAP_KEYS: Mapping[str, str] = {"iap-1": IAP_PUBLIC}


def iap_signed(key: bytes = IAP_KEY, kid: str = "iap-1", **changes: Any) -> str:
    """An IAP-style assertion (ES256) signed with ``key``; ``changes`` replace or (None) drop claims."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "https://cloud.google.com/iap",
        "aud": IAP_AUDIENCE,
        "email": "ops@example.org",
        "sub": "accounts.google.com:123",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    token: bytes = jwt.encode(crypt.ES256Signer.from_string(key, kid), claims)
    return token.decode()
