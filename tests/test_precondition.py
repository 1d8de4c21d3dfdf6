"""The conditional-write probe's verdict for each way a store can get conditional writes wrong.

A small in-memory store behind httpx.MockTransport plays each misbehaviour. Integration:
tests/integration/test_conditional.py runs the probe against moto, nanio and Ceph RGW.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

from s3result.results import config, precondition
from s3result.s3.client import S3Client
from s3result.s3.retry import RetryConfig
from s3result.s3.transport import HttpxTransport


def _store(quirk: str) -> S3Client:
    objects: dict[str, bytes] = {}

    def etag(body: bytes) -> str:
        return f'"{hashlib.md5(body).hexdigest()}"'

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.path
        current = objects.get(key)
        if request.method == "DELETE":
            objects.pop(key, None)
            return httpx.Response(204)
        if request.method == "GET":
            if current is None:
                return httpx.Response(404, content=b"<Error><Code>NoSuchKey</Code></Error>")
            return httpx.Response(200, content=current, headers={"ETag": etag(current)})
        body = request.content
        if quirk == "501" and ("if-none-match" in request.headers or "if-match" in request.headers):
            return httpx.Response(501, content=b"<Error><Code>NotImplemented</Code></Error>")
        refuse = b"<Error><Code>PreconditionFailed</Code></Error>"
        if "if-none-match" in request.headers:
            if quirk == "refuse-create" or (current is not None and quirk != "ignore-inm"):
                if quirk == "inm-changes" and current is not None:
                    objects[key] = body
                return httpx.Response(412, content=refuse)
        if "if-match" in request.headers:
            wanted = request.headers["if-match"]
            matches = current is not None and wanted == etag(current)
            if quirk == "unquoted":
                matches = current is not None and wanted == etag(current).strip('"')
            if quirk in ("refuse-match", "unquoted-refused"):
                matches = False
            if quirk == "ignore-if-match":
                matches = True
            if not matches:
                if quirk == "im-changes":
                    objects[key] = body
                return httpx.Response(412, content=refuse)
        objects[key] = body
        return httpx.Response(200, headers={"ETag": etag(body)})

    return S3Client(
        config.build(url="s3result+http://AKID:SECRET@127.0.0.1:9000/bucket/pre", environ={}).s3,
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),
        retry=RetryConfig(max_attempts=1, base_delay=0.0),
        sleep=lambda s: None,
    )


@pytest.mark.parametrize(
    ("quirk", "ok", "reason"),
    [
        ("none", True, "honoured"),
        ("501", False, "501 Not Implemented"),
        ("refuse-create", False, "refused to create a key that did not exist"),
        ("ignore-inm", False, "ignores If-None-Match"),
        ("inm-changes", False, "refused If-None-Match write still changed"),
        ("unquoted", False, "without the ETag's quotes"),
        ("refuse-match", False, "If-Match with the current ETag was refused"),
        ("ignore-if-match", False, "ignores If-Match"),
        ("im-changes", False, "refused If-Match write still changed"),
    ],
)
def test_probe_verdict_per_quirk(quirk: str, ok: bool, reason: str) -> None:
    verdict = precondition.probe(_store(quirk), "pre")
    assert verdict.ok is ok and reason in verdict.reason


def test_forced_modes_skip_the_probe() -> None:
    client = _store("501")
    assert precondition.support_for(client, config.ConditionalWrites.ETAG, "pre").forced
    off = precondition.support_for(client, config.ConditionalWrites.DISABLED, "pre")
    assert off.forced and not off.ok
