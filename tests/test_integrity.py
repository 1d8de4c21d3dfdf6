"""The checksum every result carries (integrity.py), driven through S3Client with a mock store.

Integration: tests/integration/test_integrity.py flips a byte of real answers (SSE-KMS on
moto, Ceph RGW, the directory-bucket front) through a proxy.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3result.errors import ChecksumMismatch, CorruptResponse
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.integrity import CHECKSUM_HEADER, body_mismatch, checksum
from s3result.s3.retry import RetryConfig, is_permanent, is_retryable
from s3result.s3.transport import HttpxTransport, RawResponse

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, *, attempts: int = 3) -> S3Client:
    return S3Client(
        config.build(url="s3result+http://AKID:SECRET@127.0.0.1:9000/bkt/pre", environ={}).s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=attempts, base_delay=0.0),
        sleep=lambda s: None,
    )


@given(st.binary(max_size=300))
def test_checksum_is_zlib_crc32_in_hex(body: bytes) -> None:
    assert checksum(body) == format(zlib.crc32(body), "08x") and len(checksum(body)) == 8


@given(body=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_changed_byte_is_caught(body: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    wrong = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    resp = RawResponse(200, {CHECKSUM_HEADER: checksum(body), "etag": '"opaque"'}, wrong)
    error = body_mismatch("k", resp)
    assert isinstance(error, ChecksumMismatch) and "'k'" in str(error)
    assert body_mismatch("k", RawResponse(200, {CHECKSUM_HEADER: checksum(body)}, body)) is None


def test_every_put_carries_the_checksum_and_signs_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"ETag": '"e"'})

    make(handler).put("k", b"payload", metadata={"other": "x"})
    assert seen[0].headers[CHECKSUM_HEADER] == checksum(b"payload")
    assert CHECKSUM_HEADER in seen[0].headers["authorization"]  # in SignedHeaders
    assert seen[0].headers["x-amz-meta-other"] == "x"


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_wrong_body_is_read_once_more_then_raised(attempts: int) -> None:
    """An opaque ETag (as under SSE-KMS): only the checksum can tell; one retry, then the error."""
    calls: list[int] = []
    good = checksum(b'{"result": 1}')

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=b'{"result": 7}', headers={"ETag": '"kms-opaque"', CHECKSUM_HEADER: good})

    with pytest.raises(ChecksumMismatch, match="'pre/k'.*does not match its CRC32"):
        make(handler, attempts=attempts).get("pre/k")
    assert len(calls) == 2


def test_a_wrong_body_then_the_right_one_is_the_right_one() -> None:
    bodies = [b"wrong", b"right"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies.pop(0), headers={CHECKSUM_HEADER: checksum(b"right")})

    assert make(handler, attempts=1).get("k").body == b"right"
    assert bodies == []


def test_the_checksum_replaces_the_md5_check_and_old_objects_keep_it() -> None:
    # The CRC holds: a stale or non-MD5 ETag of the right form does not matter.
    crc_ok = {CHECKSUM_HEADER: checksum(b"x"), "ETag": '"' + "0" * 32 + '"'}
    assert make(lambda r: httpx.Response(200, content=b"x", headers=crc_ok)).get("k").body == b"x"
    # No checksum (written by an older release): the MD5 ETag still catches a wrong body.
    md5_only = {"ETag": f'"{hashlib.md5(b"y").hexdigest()}"'}
    with pytest.raises(ChecksumMismatch, match="ETag"):
        make(lambda r: httpx.Response(200, content=b"x", headers=md5_only)).get("k")


def test_a_mismatch_is_permanent_for_waits_but_a_broken_coding_is_not() -> None:
    mismatch = ChecksumMismatch("m", method="GET", key="k")
    assert isinstance(mismatch, CorruptResponse) and is_retryable(mismatch)
    assert is_permanent(mismatch)
    assert not is_permanent(CorruptResponse("gzip body ends early", method="GET", key="k"))
