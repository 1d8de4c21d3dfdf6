"""Bodies on the wire: read whole within a limit, decoded (gzip, deflate), sent in chunks.

A result past ``max_result_size`` is refused while it is read, not after; an error document is
cut at ``ERROR_BODY_LIMIT``. Used by both transports (``transport``).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator

from .errors import BodyTooLarge, CorruptResponse, EndpointError

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "ERROR_BODY_LIMIT",
    "SEND_CHUNK",
    "content_length",
    "decode_body",
    "read_body",
    "send_chunks",
]


#: Bytes of an error response kept: S3 error documents are well under 1 KiB.
ERROR_BODY_LIMIT = 64 * 1024
#: Bodies above this (a wrong endpoint's download, say) are refused when no limit is given.
DEFAULT_BODY_LIMIT = 64 * 1024 * 1024


def read_body(chunks: Iterable[bytes], status: int, length: str | None, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes (``ERROR_BODY_LIMIT`` for an error status).

    Chunks go into one ``BytesIO`` whose ``getvalue()`` hands its buffer over without a copy,
    so a large result is held about once (plus a chunk), not as a list of chunks plus a join.
    An error body is cut at the cap: it only needs its Code and Message, which come first.
    """
    cap = limit if status < 300 else ERROR_BODY_LIMIT
    if status < 300 and length is not None and length.isdigit() and int(length) > cap:
        raise BodyTooLarge(
            f"the store announced a {int(length)}-byte body, over max_body_size={limit} (max_result_size in s3result's settings); "
            "raise it, or check endpoint_url and the key"
        )
    buf = io.BytesIO()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            if status >= 300:
                buf.write(chunk[: len(chunk) - (size - cap)])
                break
            raise BodyTooLarge(
                f"the body is over max_body_size={limit} bytes (max_result_size in s3result's settings); "
                "raise it, or check endpoint_url and the key"
            )
        buf.write(chunk)
    return buf.getvalue()


# zlib's window bits per content coding: 31 is the gzip container, 15 the zlib one (RFC 9110's
# "deflate"); a raw deflate stream, which some servers send as "deflate", is tried with -15.
_CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def decode_body(data: bytes, encoding: str, status: int, limit: int) -> bytes:
    """The body with its Content-Encoding undone: s3result asks for identity, but a proxy (or an
    object stored with Content-Encoding) may send gzip anyway, and httpcore does not decompress.

    Bounded like ``read_body``: a decoded result past ``limit`` is ``BodyTooLarge``, and an
    error document is cut at ``ERROR_BODY_LIMIT``. A result that does not decompress, or whose
    stream ends early, is ``CorruptResponse`` (retried as a lost reply); an error body that does
    not is kept as it came (its status still classifies it).
    """
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip().lower() not in ("", "identity")]
    if not data or not codings:
        return data
    cap = limit if status < 300 else ERROR_BODY_LIMIT
    for coding in reversed(codings):  # the last coding listed was applied last
        wbits = _CODINGS.get(coding)
        if wbits is None:
            raise EndpointError(
                f"the store (or a proxy in front of it) answered with Content-Encoding: {coding}, although "
                "s3result asks for identity and decodes only gzip and deflate; stop the proxy from compressing"
            )
        try:
            try:
                inflater = zlib.decompressobj(wbits)
                out = inflater.decompress(data, cap + 1)
            except zlib.error:
                if coding != "deflate":
                    raise
                inflater = zlib.decompressobj(-15)
                out = inflater.decompress(data, cap + 1)
        except zlib.error as exc:
            if status >= 300:
                return data
            raise CorruptResponse(f"the {coding}-encoded body does not decompress ({exc})") from None
        if len(out) > cap:
            if status >= 300:
                return out[:cap]
            raise BodyTooLarge(
                f"the {coding}-encoded body decodes to over max_body_size={limit} bytes (max_result_size in s3result's settings); raise it, "
                "or check endpoint_url and the key"
            )
        if not inflater.eof and status < 300:
            raise CorruptResponse(f"the {coding}-encoded body ends early")
        data = out
    return data


# httpcore's socket writer re-slices what the kernel did not take (``buffer = buffer[n:]``):
# given 64 MiB at once, it copies the rest after every partial send. Chunks bound that copy.
SEND_CHUNK = 1024 * 1024


def send_chunks(body: bytes) -> Iterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(body), SEND_CHUNK):
        yield bytes(view[start : start + SEND_CHUNK])


def content_length(headers: list[tuple[bytes, bytes]], name: bytes = b"content-length") -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
