"""What a stored conditional-write verdict must say to be trusted; anything else is "probe again".

Integration: tests/integration/test_stored_verdict.py (moto and nanio, counted at the wire).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from s3result.results import config, verdict
from s3result.s3.client import S3Client


def _client(url: str = "s3result+http://AKID:SECRET@127.0.0.1:9000/bucket/pre") -> S3Client:
    return S3Client(config.build(url=url, environ={}).s3)


def _body(client: S3Client, **change: Any) -> bytes:
    data = json.loads(verdict.encode(client, True, "If-None-Match and If-Match honoured", "MinIO"))
    data.update(change)
    return json.dumps(data).encode()


def test_a_verdict_round_trips() -> None:
    client = _client()
    found = verdict.decode(client, _body(client), "MinIO")
    assert isinstance(found, verdict.StoredVerdict) and found.ok and found.age < 5


def test_the_key_is_per_endpoint_and_bucket_under_the_prefix() -> None:
    one, other = _client(), _client("s3result+http://AKID:SECRET@127.0.0.1:9001/bucket/pre")
    assert verdict.verdict_key(one, "pre").startswith("pre/s3result-probe/verdict-")
    assert verdict.verdict_key(one, "pre") != verdict.verdict_key(other, "pre")
    assert verdict.verdict_key(one, "").startswith("s3result-probe/verdict-")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"probed_at": time.time() - verdict.MAX_AGE - 1}, "older than"),
        ({"probed_at": time.time() + 3600}, "in the future"),
        ({"probed_at": float("nan")}, "not a verdict"),
        ({"probed_at": True}, "not a verdict"),
        ({"ok": 1}, "not a verdict"),
        ({"reason": "x" * 1000}, "not a verdict"),
        ({"reason": "line\nbreak"}, "not a verdict"),
        ({"server": 5}, "not a verdict"),
        ({"server": "AmazonS3"}, "answered as"),
        ({"server": None}, "answered as"),  # a working verdict always read the header back
        ({"bucket": "other"}, "another endpoint or bucket"),
        ({"endpoint": "https://s3.amazonaws.com"}, "another endpoint or bucket"),
        ({"s3result_verdict": 2}, "format 2"),
        ({"s3result_verdict": "1"}, "not a verdict"),
        ({"extra": 1}, "not a verdict"),
    ],
)
def test_a_verdict_that_does_not_fit_is_not_trusted(change: dict[str, Any], why: str) -> None:
    client = _client()
    found = verdict.decode(client, _body(client, **change), "MinIO")
    assert isinstance(found, str) and why in found


@pytest.mark.parametrize("body", [b"", b"\xff", b"null", b"[1]", b'"text"', b"{}"])
def test_garbage_is_not_a_verdict(body: bytes) -> None:
    assert verdict.decode(_client(), body, "MinIO") == "not a verdict"


def test_an_unusable_verdict_taken_before_any_read_fits_any_server() -> None:
    """A probe that failed at its first steps never read the Server header; "unusable" only downgrades."""
    client = _client()
    body = verdict.encode(client, False, "the store ignores If-None-Match", None)
    found = verdict.decode(client, body, "nanio")
    assert isinstance(found, verdict.StoredVerdict) and not found.ok


def test_the_age_uses_the_clock_learnt_from_the_store() -> None:
    client = _client()
    client.clock_offset = -2 * verdict.MAX_AGE  # this machine is two hours ahead of the store
    body = _body(client)
    client.clock_offset = 0.0
    assert "older than" in str(verdict.decode(client, body, "MinIO"))


def test_the_verdict_key_is_the_one_older_processes_read() -> None:
    """The key digests the store's identity spelt as before (``<base url> <bucket>``): a process of
    this release finds the verdict an older one kept, and the other way round."""
    import hashlib

    from s3result.s3.client import S3Client
    from s3result.s3.config import S3Config

    client = S3Client(S3Config(bucket="bkt", endpoint_url="http://127.0.0.1:9000", access_key="A", secret_key="S"))
    digest = hashlib.sha256(b"http://127.0.0.1:9000 bkt").hexdigest()[:16]
    assert verdict.verdict_key(client, "pre") == f"pre/s3result-probe/verdict-{digest}"
