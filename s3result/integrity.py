"""Whether an answer's body is the one the store holds: checked before anything decodes it.

A flipped byte must never decode into a wrong result. ``md5_mismatch`` uses the ETag where
it is the body's MD5 (a plain PUT without SSE-KMS or SSE-C).
"""

from __future__ import annotations

import hashlib
import re

from .errors import CorruptResponse
from .transport import RawResponse

__all__ = ["looks_like_html", "md5_mismatch"]

_PLAIN_MD5 = re.compile(r'^"?([0-9a-fA-F]{32})"?$')


def looks_like_html(resp: RawResponse) -> bool:
    """A web page where S3 sends an object or nothing (moto labels empty bodies text/html)."""
    return resp.headers.get("content-type", "").startswith("text/html") and (
        b"<html" in resp.body[:1024].lower() or b"<!doctype html" in resp.body[:1024].lower()
    )


def md5_mismatch(key: str, resp: RawResponse) -> CorruptResponse | None:
    """A plain PUT's ETag is the body's MD5: check it, unless SSE-KMS/SSE-C changes that."""
    etag = resp.headers.get("etag", "")
    match = _PLAIN_MD5.match(etag)
    if match is None:
        return None
    if resp.headers.get("content-encoding", "identity").strip().lower() != "identity":
        # Decoded by the transport: the ETag may be of either form (a proxy compressed it
        # in transit, or the object is stored compressed); the coding's own CRC checked it.
        return None
    sse = resp.headers.get("x-amz-server-side-encryption", "")
    if sse.startswith("aws:kms") or "x-amz-server-side-encryption-customer-algorithm" in resp.headers:
        return None
    if hashlib.md5(resp.body, usedforsecurity=False).hexdigest() == match.group(1).lower():
        return None
    return CorruptResponse(f"S3 GET {key!r}: body does not match its ETag {etag}", method="GET", key=key)
