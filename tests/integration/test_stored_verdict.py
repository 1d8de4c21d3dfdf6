"""The conditional-write verdict kept in the bucket, on real stores, counted at the wire.

Each test plays "a new process" by emptying the process's verdict cache. Unit side:
tests/test_verdict.py (what a stored verdict must say to be trusted). A real worker:
tests/e2e/test_requests.py (a later worker's requests before its first result).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from conformance.servers import Target
from s3result.backend import S3Backend
from s3result.errors import AccessDenied
from s3result.results import config, precondition, verdict
from s3result.s3.client import S3Client
from s3result.s3.retry import is_permanent
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer

PROBE = config.ConditionalWrites.PROBE


@pytest.fixture(autouse=True)
def _new_process() -> None:
    """Nothing taken yet in this "process"."""
    precondition._VERDICTS.forget()


@pytest.fixture
def counted(moto_server: MotoServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    yield proxy
    proxy.close()


def _url(moto: MotoServer, proxy: CountingProxy, prefix: str, *, readonly: bool = False) -> str:
    key, secret = (
        (moto.readonly_access_key, moto.readonly_secret_key) if readonly else (moto.access_key, moto.secret_key)
    )
    return f"s3result+http://{key}:{secret}@127.0.0.1:{proxy.port}/{moto.bucket}/{prefix}"


def _client(url: str) -> S3Client:
    return S3Client(config.build(url=url, environ={}).s3)


def _forget_in_process() -> None:
    precondition._VERDICTS.forget()


def test_a_later_process_reads_the_verdict_with_one_get(moto_server: MotoServer, counted: CountingProxy) -> None:
    client = _client(_url(moto_server, counted, "later"))
    assert precondition.support_for(client, PROBE, "later").ok
    first = counted.snapshot()
    assert first == {"PUT": 5, "GET": 3, "DELETE": 1}, first  # verdict GET, probe (7), verdict PUT
    stored = json.loads(client.get(verdict.verdict_key(client, "later")).body)
    assert stored["ok"] is True and stored["endpoint"] == client.config.base_url and stored["server"]
    first = counted.snapshot()
    _forget_in_process()
    assert precondition.support_for(client, PROBE, "later").ok
    assert counted.snapshot() - first == {"GET": 1}
    _forget_in_process()
    before = counted.snapshot()
    assert precondition.support_for(client, PROBE, "later", confirm=True).ok  # the start check's way
    assert counted.snapshot() - before == {"GET": 1, "PUT": 1}


def test_a_new_process_stores_one_result_in_two_requests(moto_server: MotoServer, counted: CountingProxy) -> None:
    url = _url(moto_server, counted, "cold")
    precondition.support_for(_client(url), PROBE, "cold")
    _forget_in_process()
    before = counted.snapshot()
    app = Celery("cold", set_as_current=False)
    app.conf.result_backend = url
    app.backend.store_result("cold-task", 42, "SUCCESS")
    assert counted.snapshot() - before == {"GET": 1, "PUT": 1}


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not json",
        b"[]",
        b'{"ok": true}',
        b"{" + b'"x": 1, ' * 10 + b'"ok": true}',
    ],
)
def test_a_garbled_verdict_means_probe_again(moto_server: MotoServer, counted: CountingProxy, body: bytes) -> None:
    client = _client(_url(moto_server, counted, "garbled"))
    key = verdict.verdict_key(client, "garbled")
    client.put(key, body)
    before = counted.snapshot()
    assert precondition.support_for(client, PROBE, "garbled").ok
    assert (counted.snapshot() - before)["PUT"] == 5  # probed, and a good verdict stored over it
    assert json.loads(client.get(key).body)["ok"] is True


def _stored(client: S3Client, key: str, **change: Any) -> None:
    data = json.loads(verdict.encode(client, True, "If-None-Match and If-Match honoured", "Werkzeug"))
    data.update(change)
    client.put(key, json.dumps(data).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"probed_at": time.time() - verdict.MAX_AGE - 60},  # expired
        {"probed_at": time.time() + 3600},  # from a clock an hour ahead
        {"server": "AmazonS3"},  # another store's software behind this endpoint
        {"endpoint": "http://127.0.0.1:1"},  # copied from another endpoint
        {"s3result_verdict": 2},  # another format
    ],
    ids=["expired", "future", "other-server", "other-endpoint", "other-format"],
)
def test_a_verdict_that_does_not_fit_means_probe_again(
    moto_server: MotoServer, counted: CountingProxy, change: dict[str, Any]
) -> None:
    client = _client(_url(moto_server, counted, "nofit"))
    key = verdict.verdict_key(client, "nofit")
    _stored(client, key, ok=False, reason="forged: unusable", **change)
    before = counted.snapshot()
    assert precondition.support_for(client, PROBE, "nofit").ok  # not the stored "unusable"
    assert (counted.snapshot() - before)["PUT"] == 5


def test_a_fitting_negative_verdict_is_used(moto_server: MotoServer, counted: CountingProxy) -> None:
    """The control for the test above: the same object, unchanged, is believed (one GET)."""
    client = _client(_url(moto_server, counted, "fits"))
    key = verdict.verdict_key(client, "fits")
    assert client.get_or_none(key) is None
    client.put(key, b"x")
    server_header = client.get(key).server
    _stored(client, key, ok=False, reason="stored: unusable", server=server_header)
    before = counted.snapshot()
    found = precondition.support_for(client, PROBE, "fits")
    assert not found.ok and found.reason == "stored: unusable"
    assert counted.snapshot() - before == {"GET": 1}


def test_a_read_only_key_reads_the_verdict_but_fails_the_start_check(
    moto_server: MotoServer, counted: CountingProxy
) -> None:
    assert precondition.support_for(_client(_url(moto_server, counted, "ro")), PROBE, "ro").ok
    _forget_in_process()
    reader = _client(_url(moto_server, counted, "ro", readonly=True))
    assert precondition.support_for(reader, PROBE, "ro").ok  # a producer that only reads needs no write
    _forget_in_process()
    with pytest.raises(AccessDenied) as exc:
        precondition.support_for(reader, PROBE, "ro", confirm=True)
    assert is_permanent(exc.value) and "s3:PutObject" in str(exc.value)


def test_the_worker_start_check_is_two_requests_on_a_probed_store(
    moto_server: MotoServer, counted: CountingProxy
) -> None:
    url = _url(moto_server, counted, "startcheck")
    app = Celery("start", set_as_current=False)
    app.conf.result_backend = url
    backend = app.backend
    assert isinstance(backend, S3Backend)
    assert backend.check_store() is None  # the first worker probes
    _forget_in_process()
    before = counted.snapshot()
    assert backend.check_store() is None
    assert counted.snapshot() - before == {"GET": 1, "PUT": 1}
    before = counted.snapshot()
    backend.store_result("first", 1, "SUCCESS")  # the verdict is taken: one PUT
    assert counted.snapshot() - before == {"PUT": 1}
    _forget_in_process()
    app.conf.result_backend = url.replace(moto_server.secret_key, moto_server.readonly_secret_key).replace(
        moto_server.access_key, moto_server.readonly_access_key
    )
    app._local.__dict__.pop("backend", None)
    app._backend_cache = None
    error = app.backend.check_store()
    assert isinstance(error, AccessDenied) and is_permanent(error)  # the worker stops: one CRITICAL line


def test_forced_modes_store_no_verdict(moto_server: MotoServer, counted: CountingProxy, boto3_client: Any) -> None:
    # The start check's GET, then the result: one PUT, or Celery's read-then-write.
    for mode, sent in (("etag", {"GET": 1, "PUT": 1}), ("disabled", {"GET": 2, "PUT": 1})):
        app = Celery("forced", set_as_current=False)
        app.conf.result_backend = _url(moto_server, counted, f"forced-{mode}") + f"?conditional_writes={mode}"
        before = counted.snapshot()
        assert app.backend.check_store() is None
        app.backend.store_result("t", 1, "SUCCESS")
        assert counted.snapshot() - before == sent
        listed = boto3_client.list_objects_v2(Bucket=moto_server.bucket, Prefix=f"forced-{mode}/s3result-probe")
        assert listed.get("KeyCount", 0) == 0


def test_two_processes_probing_at_once_store_one_good_verdict(moto_server: MotoServer, counted: CountingProxy) -> None:
    url = _url(moto_server, counted, "twice")
    results: list[precondition.Support] = []
    gate = threading.Barrier(2)

    def one() -> None:
        gate.wait()
        results.append(precondition._take(_client(url), "twice", None, False)[0])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.ok for r in results] == [True, True]
    client = _client(url)
    assert precondition.support_for(client, PROBE, "twice").ok
    before = counted.snapshot()
    _forget_in_process()
    assert precondition.support_for(client, PROBE, "twice").ok
    assert counted.snapshot() - before == {"GET": 1}


def test_a_store_that_ignores_if_none_match_is_probed_at_the_start_check(nanio_target: Target) -> None:
    """A verdict "works" copied onto a store that ignores If-None-Match (same endpoint, same
    Server header): the start check's conditional PUT is accepted, so the store is probed again."""
    client = _client(nanio_target.url("replaced"))
    key = verdict.verdict_key(client, "replaced")
    client.put(key, b"x")
    _stored(client, key, server=client.get(key).server)
    assert precondition.support_for(client, PROBE, "replaced").ok  # believed: the age bounds this
    _forget_in_process()
    found = precondition.support_for(client, PROBE, "replaced", confirm=True)
    assert not found.ok and "ignores If-None-Match" in found.reason
    assert json.loads(client.get(key).body)["ok"] is False  # stored for the next process


def test_a_verdict_whose_checksum_fails_means_probe_again(
    moto_server: MotoServer, counted: CountingProxy, boto3_client: Any
) -> None:
    """A body that does not match the CRC32 it travels with is never decoded: probe again, and replace it."""
    client = _client(_url(moto_server, counted, "badcrc"))
    key = verdict.verdict_key(client, "badcrc")
    good = verdict.encode(client, False, "forged: unusable", None)
    boto3_client.put_object(Bucket=moto_server.bucket, Key=key, Body=good, Metadata={"s3result-crc32": "00000000"})
    assert precondition.support_for(client, PROBE, "badcrc").ok
    assert json.loads(client.get(key).body)["ok"] is True
