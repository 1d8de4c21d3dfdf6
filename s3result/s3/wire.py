"""A request's headers as they go on the wire: signed, then encoded once.

The client chooses the credentials and the signing name (a directory bucket signs as
``s3express``); this step signs with them and lays out the header bytes every transport sends.
tests/test_wire.py pins the result byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import sigv4

if TYPE_CHECKING:
    from .credentials.base import Credentials
    from .credentials.chain import CredentialSource

__all__ = ["signed_wire", "signing_identity"]


def signing_identity(
    credentials: CredentialSource, session_source: CredentialSource | None, *, session: bool
) -> tuple[Credentials, str, str]:
    """The credentials, signing name and token header of one request.

    On a directory bucket: with the bucket's session credentials, or (``session=False``, for
    CreateSession itself) the ordinary ones, both under the signing name ``s3express``.
    """
    if session_source is None:
        return credentials.get(), "s3", "x-amz-security-token"
    if session:
        return session_source.get(), "s3express", "x-amz-s3session-token"
    return credentials.get(), "s3express", "x-amz-security-token"


def signed_wire(
    *,
    method: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, str]],
    extra: list[tuple[str, str]],
    body: bytes,
    body_sha: str,
    creds: Credentials,
    region: str,
    now: float,
    service: str,
    token_header: str,
) -> list[tuple[bytes, bytes]]:
    """Sign with ``creds`` at ``now``; the request's headers, as bytes, in the order they are sent."""
    signed = sigv4.sign_s3(
        method=method,
        host=host,
        path=path,
        query=query,
        headers=extra,
        body_sha256=body_sha,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        session_token=creds.token,
        region=region,
        now=now,
        service=service,
        token_header=token_header,
    )
    # Identity: a proxy that compresses would only add CPU on both ends (results are small,
    # or compressed already by result_compression); a gzipped answer is decoded anyway.
    wire = [(b"Host", host.encode()), (b"Accept-Encoding", b"identity")]
    wire += [(k.encode(), v.encode("utf-8")) for k, v in extra]
    wire += [(k.encode(), v.encode("utf-8")) for k, v in signed]
    if body or method == "PUT":
        wire.append((b"Content-Length", str(len(body)).encode()))
    return wire
