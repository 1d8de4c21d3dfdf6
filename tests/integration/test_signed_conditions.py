"""If-Match and If-None-Match are signed, so a proxy that strips them cannot turn a
compare-and-swap into a blind write: the store refuses the signature instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3result.errors import S3Error
from s3result.results.config import build
from s3result.s3.client import S3Client
from s3result.s3.request import PutMode
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer


def _signed_headers(wire: list[tuple[bytes, bytes]]) -> str:
    auth = dict(wire)[b"Authorization"].decode()
    return auth.split("SignedHeaders=")[1].split(",")[0]


def test_conditional_headers_are_in_signed_headers(moto_server: MotoServer) -> None:
    client = S3Client(build(url=moto_server.url("sig"), environ={}).s3)
    for extra in ([("if-match", '"abc"')], [("if-none-match", "*")]):
        wire = client._signed_headers("PUT", "/b/k", extra, b"x", "0" * 64)
        assert extra[0][0] in _signed_headers(wire).split(";")


@pytest.fixture
def stripping_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.host, moto_server.port)
    proxy.strip_headers = {b"if-match", b"if-none-match"}
    yield proxy
    proxy.close()


def test_store_refuses_conditional_put_whose_condition_was_stripped(
    moto_server: MotoServer, stripping_proxy: FaultProxy
) -> None:
    direct = S3Client(build(url=moto_server.url("strip"), environ={}).s3)
    etag = direct.put("strip/k", b"v1")
    direct.put("strip/k", b"v2")  # the ETag above is now stale
    url = moto_server.url("strip").replace(f":{moto_server.port}/", f":{stripping_proxy.port}/")
    client = S3Client(build(url=url, environ={"S3RESULT_MAX_ATTEMPTS": "1"}).s3)
    with pytest.raises(S3Error) as refused:
        client.put("strip/k", b"blind", mode=PutMode.update(etag))
    assert refused.value.status == 403, refused.value
    with pytest.raises(S3Error):
        client.put("strip/k", b"blind", mode=PutMode.CREATE)
    assert direct.get("strip/k").body == b"v2"
