"""Undoing a Content-Encoding the store or a proxy applied (pure logic; the real gzipping proxy
is in tests/integration/test_faults.py)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from s3result.errors import BodyTooLarge, CorruptResponse, EndpointError
from s3result.s3.bodies import ERROR_BODY_LIMIT, decode_body

BODY = b'{"status": "SUCCESS", "result": 42}' * 50


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "coding,data",
    [
        ("gzip", gzip.compress(BODY, mtime=0)),
        ("x-gzip", gzip.compress(BODY, mtime=0)),
        ("GZIP ", gzip.compress(BODY, mtime=0)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", _raw_deflate(BODY)),
        ("identity", BODY),
        ("gzip, gzip", gzip.compress(gzip.compress(BODY, mtime=0), mtime=0)),
    ],
)
def test_codings_are_undone(coding: str, data: bytes) -> None:
    assert decode_body(data, coding, 200, 1 << 20) == BODY


def test_a_truncated_or_garbled_result_is_corrupt_and_retried() -> None:
    with pytest.raises(CorruptResponse):
        decode_body(gzip.compress(BODY)[:-12], "gzip", 200, 1 << 20)
    with pytest.raises(CorruptResponse):
        decode_body(b"not gzip at all", "gzip", 200, 1 << 20)


def test_decoding_is_bounded_by_max_result_size() -> None:
    bomb = gzip.compress(b"\0" * (10 << 20))
    with pytest.raises(BodyTooLarge, match="max_result_size"):
        decode_body(bomb, "gzip", 200, 1 << 20)
    assert len(decode_body(bomb, "gzip", 404, 1 << 20)) == ERROR_BODY_LIMIT


def test_an_error_body_that_does_not_decode_is_kept() -> None:
    assert decode_body(b"<Error/>", "gzip", 503, 1 << 20) == b"<Error/>"


def test_a_coding_we_cannot_undo_names_the_fix() -> None:
    with pytest.raises(EndpointError, match="Content-Encoding: br"):
        decode_body(b"\x1b\x00", "br", 200, 1 << 20)
