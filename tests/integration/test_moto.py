"""S3Client and S3Backend against a real moto server with SigV4 validation on.

Unit tests of the same features: tests/test_client.py (mocked transport), tests/test_config.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery import Celery

from s3result.backend import S3Backend
from s3result.errors import AccessDenied, AlreadyExists, InvalidKey, NotFound, PreconditionFailed
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.request import PutMode
from s3result.testing.store import MotoServer


@pytest.fixture
def client(moto_server: MotoServer) -> S3Client:
    return S3Client(config.build(url=moto_server.url(prefix="it")).s3)


def _k() -> str:
    return f"it/{uuid.uuid4()}"


def test_put_get_head_delete_round_trip(client: S3Client, boto3_client: Any, moto_server: MotoServer) -> None:
    key = _k()
    etag = client.put(key, b"payload \x00\xff", content_type="application/json")
    got = client.get(key)
    assert got.body == b"payload \x00\xff" and got.etag == etag
    head = client.head(key)
    assert head.size == len(b"payload \x00\xff") and head.etag == etag
    # An independent client sees the same object.
    obj = boto3_client.get_object(Bucket=moto_server.bucket, Key=key)
    assert obj["Body"].read() == b"payload \x00\xff"
    assert obj["ContentType"] == "application/json"
    client.delete(key)
    client.delete(key)  # idempotent
    with pytest.raises(NotFound):
        client.get(key)
    assert client.get_or_none(key) is None


def test_missing_key_is_404_on_get_and_head(client: S3Client) -> None:
    with pytest.raises(NotFound) as exc:
        client.get(_k())
    assert exc.value.code == "NoSuchKey"
    with pytest.raises(NotFound):
        client.head(_k())


def test_zero_byte_and_large_objects(client: S3Client) -> None:
    key = _k()
    client.put(key, b"")
    assert client.get(key).body == b""
    big = bytes(range(256)) * 4096
    client.put(key, big)
    assert client.get(key).body == big


@pytest.mark.parametrize(
    "name",
    [
        "with space",
        "plus+sign",
        "tilde~",
        "percent%25and%",
        "equals=and&amp",
        "question?mark",
        "hash#tag",
        "unicode-ሴ-é-😀",
        "dots/../and/./segments",
        "colon:semi;comma,",
        "quote'bang!star*paren()",
    ],
)
def test_special_characters_in_keys(client: S3Client, boto3_client: Any, moto_server: MotoServer, name: str) -> None:
    key = f"it/{uuid.uuid4()}/{name}"
    client.put(key, name.encode())
    assert client.get(key).body == name.encode()
    assert boto3_client.get_object(Bucket=moto_server.bucket, Key=key)["Body"].read() == name.encode()
    client.delete(key)
    assert client.get_or_none(key) is None


def test_key_longer_than_1024_bytes_is_refused_before_sending(client: S3Client) -> None:
    with pytest.raises(InvalidKey, match="1024"):
        client.put("k" * 1025, b"x")


def test_conditional_writes(client: S3Client) -> None:
    key = _k()
    etag = client.put(key, b"one", mode=PutMode.CREATE)
    with pytest.raises(AlreadyExists):
        client.put(key, b"two", mode=PutMode.CREATE)
    assert client.get(key).body == b"one"
    etag2 = client.put(key, b"three", mode=PutMode.update(etag))
    with pytest.raises(PreconditionFailed):
        client.put(key, b"four", mode=PutMode.update(etag))
    assert client.get(key).body == b"three" and client.get(key).etag == etag2


def test_get_many_keeps_order_and_reports_missing(client: S3Client) -> None:
    keys = [_k() for _ in range(20)]
    for i, key in enumerate(keys[::2]):
        client.put(key, str(i).encode())
    found = client.get_many(keys)
    assert [f.body if f else None for f in found] == [str(i // 2).encode() if i % 2 == 0 else None for i in range(20)]


def test_wrong_secret_is_a_clear_signature_error(moto_server: MotoServer) -> None:
    url = moto_server.url().replace(moto_server.secret_key, "not-the-secret")
    bad = S3Client(config.build(url=url).s3)
    with pytest.raises(AccessDenied) as exc:
        bad.get(_k())
    assert exc.value.code == "SignatureDoesNotMatch"
    # The secret came from the URL: the hint says so, not s3_secret_access_key or the environment.
    assert "fix the secret access key in the result_backend URL" in str(exc.value)
    assert "s3_secret_access_key" not in str(exc.value) and "AWS_SECRET_ACCESS_KEY" not in str(exc.value)
    assert "not-the-secret" not in str(exc.value)


def test_unknown_access_key(moto_server: MotoServer) -> None:
    url = moto_server.url().replace(moto_server.access_key, "AKIDUNKNOWN000000000")
    with pytest.raises(AccessDenied) as exc:
        S3Client(config.build(url=url).s3).put(_k(), b"x")
    assert exc.value.code == "InvalidAccessKeyId"


def test_missing_bucket(moto_server: MotoServer) -> None:
    url = moto_server.url().replace(f"/{moto_server.bucket}/", "/no-such-bucket-here/")
    with pytest.raises(NotFound) as exc:
        S3Client(config.build(url=url).s3).put(_k(), b"x")
    assert exc.value.code == "NoSuchBucket"
    assert "create the bucket" in str(exc.value)


def test_backend_get_set_mget_delete(moto_server: MotoServer, boto3_client: Any) -> None:
    app = Celery("it", set_as_current=False)
    app.conf.result_backend = moto_server.url(prefix="backend/it")
    backend = S3Backend(app=app, url=moto_server.url(prefix="backend/it").split("+", 1)[1])
    backend.set(b"celery-task-meta-x", '{"status": "SUCCESS"}')
    assert backend.get(b"celery-task-meta-x") == b'{"status": "SUCCESS"}'
    assert boto3_client.head_object(Bucket=moto_server.bucket, Key="backend/it/celery-task-meta-x")
    assert backend.mget([b"celery-task-meta-x", b"celery-task-meta-y"]) == [b'{"status": "SUCCESS"}', None]
    backend.delete(b"celery-task-meta-x")
    assert backend.get(b"celery-task-meta-x") is None
    backend.delete(b"celery-task-meta-x")


def test_backend_store_and_read_results(moto_server: MotoServer) -> None:
    app = Celery("it", set_as_current=False)
    app.conf.result_backend = moto_server.url(prefix="backend/results")
    backend = app.backend
    assert isinstance(backend, S3Backend)
    tid = str(uuid.uuid4())
    assert backend.get_task_meta(tid)["status"] == "PENDING"
    backend.store_result(tid, {"answer": 42}, "SUCCESS")
    meta = backend.get_task_meta(tid, cache=False)
    assert meta["status"] == "SUCCESS" and meta["result"] == {"answer": 42}
    backend.forget(tid)
    assert backend.get_task_meta(tid, cache=False)["status"] == "PENDING"


def test_backend_round_trips_compressed_bytes(moto_server: MotoServer) -> None:
    app = Celery("it", set_as_current=False)
    app.conf.result_backend = moto_server.url(prefix="backend/zip")
    app.conf.result_compression = "gzip"
    app.conf.result_serializer = "pickle"
    app.conf.accept_content = ["pickle", "json"]
    app.conf.result_accept_content = ["pickle", "json"]
    backend = app.backend
    tid = str(uuid.uuid4())
    value = {"blob": bytes(range(256)) * 10, "t": (1, 2)}
    backend.store_result(tid, value, "SUCCESS")
    raw = backend.get(backend.get_key_for_task(tid))
    assert raw is not None and raw.startswith(b"\x00celery-compressed")
    assert backend.get_task_meta(tid, cache=False)["result"] == value


def test_the_client_on_its_own_with_only_s3config(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """``s3result.s3`` without the backend's settings: credentials from the AWS chain (environment)."""
    from s3result.s3 import S3Client as Client
    from s3result.s3 import S3Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    client = Client(S3Config(bucket=moto_server.bucket, endpoint_url=moto_server.endpoint, region="us-east-1"))
    key = f"alone/{uuid.uuid4()}"
    etag = client.put(key, b"on its own")
    assert client.head(key).etag == etag and client.get(key).body == b"on its own"
    client.delete(key)
    assert client.get_or_none(key) is None
    given = Client(
        S3Config(
            bucket=moto_server.bucket,
            endpoint_url=moto_server.endpoint,
            access_key=moto_server.access_key,
            secret_key=moto_server.secret_key,
        )
    )
    assert given.put(key, b"given") and given.get(key).body == b"given"
    client.close()
    given.close()
