"""AWS Signature Version 4 for S3, as pure functions named after the steps of the spec.

Nothing here performs I/O, reads the clock or the environment: callers pass the time, the
credentials and the payload hash, so every step is deterministic and testable against AWS's
published vectors. S3 differs from the generic SigV4 services in two ways that matter here:
the path is URI-encoded exactly once and never normalised (``a//b/../c`` is a valid key), and
the payload hash travels in ``x-amz-content-sha256`` so the server verifies the body.

Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable
from urllib.parse import quote

from .process import PROCESS

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "amz_date",
    "authorization_value",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "clear_signing_key_cache",
    "credential_scope",
    "payload_hash",
    "sign_s3",
    "signature",
    "signing_key",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Only these headers are signed besides x-amz-*: signing a header a proxy may rewrite
# (user-agent, accept-encoding) would make the signature fragile for no security gain.
_ALWAYS_SIGNED = frozenset({"host", "content-md5", "content-type", "if-match", "if-none-match"})

# A handful of (secret, date, region, service) tuples is all a process ever needs; the date
# is part of the key, so the entry rolls over at midnight UTC without a timer. The secret is
# held only as a digest: a rotated secret must not linger in memory as a cache key.
_KEY_CACHE_SIZE = 8
# Process-wide: a signing key depends on the secret, date, region and service alone, so every
# client of the process reuses it.
_KEYS = PROCESS.slot(
    "s3.sigv4.keys",
    dict[tuple[bytes, str, str, str], bytes],
    fork="kept",
    why="signing keys derived from a secret and a date: still valid in a child, any client may reuse them",
)
_KEYS_LOCK = PROCESS.slot("s3.sigv4.keys-lock", threading.Lock, fork="renewed", why="guards the signing-key cache")


def uri_encode(value: str) -> str:
    """Encode one query key or value: every byte but the RFC 3986 unreserved set."""
    return quote(value, safe="-_.~")


def canonical_uri(path: str) -> str:
    """Encode a path once, keeping ``/``; S3 forbids normalising or double-encoding it."""
    return quote(path, safe="/-_.~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sort by encoded key, then encoded value; a key without a value still gets ``=``."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Return the canonical header block and the signed-header list.

    Names are lower-cased, values trimmed with inner whitespace runs collapsed, and repeated
    headers joined with commas in the order they were given, as the spec requires.
    """
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
    names = sorted(merged)
    block = "".join(f"{n}:{','.join(merged[n])}\n" for n in names)
    return block, ";".join(names)


def canonical_request(
    *,
    method: str,
    uri: str,
    query: str,
    headers: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    """Join the six parts of the canonical request; ``headers`` ends with its own newline."""
    return f"{method}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{payload_hash}"


def credential_scope(*, date: str, region: str, service: str) -> str:
    """``YYYYMMDD/region/service/aws4_request``."""
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(*, amz_date: str, scope: str, canonical_request: str) -> str:
    """The algorithm, the request time, the scope and the hash of the canonical request."""
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(*, secret_key: str, date: str, region: str, service: str) -> bytes:
    """Derive (and cache) the day's signing key; four HMACs saved on every request."""
    cache_key = (_secret_digest(secret_key), date, region, service)
    cache = _KEYS.get()
    key = cache.get(cache_key)  # a dict read is atomic: the hot path takes no lock
    if key is None:
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode("utf-8"), date), region), service), "aws4_request")
        with _KEYS_LOCK.get():
            while len(cache) >= _KEY_CACHE_SIZE:
                cache.pop(next(iter(cache)))  # oldest first
            cache[cache_key] = key
    return key


def _secret_digest(secret_key: str) -> bytes:
    """What the cache keeps in place of the secret: its SHA-256, domain-separated."""
    return hashlib.sha256(b"s3result signing-key cache\0" + secret_key.encode("utf-8")).digest()


def clear_signing_key_cache() -> None:
    """Forget every derived key, for example after credentials rotate."""
    with _KEYS_LOCK.get():
        _KEYS.get().clear()


def signature(*, key: bytes, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign with the derived key."""
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_value(*, access_key: str, scope: str, signed_headers: str, signature: str) -> str:
    """The ``Authorization`` header value."""
    return f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"


def amz_date(epoch: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` for a UNIX time, in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of the body, for ``x-amz-content-sha256``."""
    return EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()


def sign_s3(
    *,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]] = (),
    headers: Iterable[tuple[str, str]] = (),
    body_sha256: str,
    access_key: str,
    secret_key: str,
    session_token: str | None = None,
    region: str,
    now: float,
    service: str = "s3",
    token_header: str = "x-amz-security-token",
) -> list[tuple[str, str]]:
    """Sign an S3 request and return the headers to add to it.

    ``path`` is the already-encoded canonical URI (what goes on the request line), so that the
    caller encodes the key once for both purposes. ``headers`` are the request's own headers;
    host, every ``x-amz-*``, content-md5 and content-type among them are signed. The result
    holds ``x-amz-date``, ``x-amz-content-sha256``, the session token when there is one, and
    ``Authorization``. The token goes in ``token_header``: S3 Express One Zone object requests
    carry their session's in ``x-amz-s3session-token`` (with ``service="s3express"``).
    """
    date_time = amz_date(now)
    added = [("x-amz-date", date_time), ("x-amz-content-sha256", body_sha256)]
    if session_token:
        added.append((token_header, session_token))
    to_sign = [("host", host), *added]
    for name, value in headers:
        lname = name.lower()
        if lname.startswith("x-amz-") or lname in _ALWAYS_SIGNED:
            if lname != "host":
                to_sign.append((lname, value))
    block, signed = canonical_headers(to_sign)
    creq = canonical_request(
        method=method,
        uri=path,
        query=canonical_query(query),
        headers=block,
        signed_headers=signed,
        payload_hash=body_sha256,
    )
    scope = credential_scope(date=date_time[:8], region=region, service=service)
    sts = string_to_sign(amz_date=date_time, scope=scope, canonical_request=creq)
    key = signing_key(secret_key=secret_key, date=date_time[:8], region=region, service=service)
    sig = signature(key=key, string_to_sign=sts)
    added.append(
        ("Authorization", authorization_value(access_key=access_key, scope=scope, signed_headers=signed, signature=sig))
    )
    return added
