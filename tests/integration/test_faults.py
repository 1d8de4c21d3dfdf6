"""Faults injected between the client and a real store (moto): each one is survived.

The proxy (s3result/testing/faults.py) drops, truncates, delays and fails requests for real on the
wire; the client must retry what is safe, sign each attempt again, resolve a lost reply to a
conditional write by reading, and never return a corrupt body.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, states

from conformance.servers import Target
from s3result.backend import S3Backend
from s3result.errors import ConnectError
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", moto_server.port, seed=7)
    yield p
    p.close()


def _url(moto: MotoServer, proxy: FaultProxy, prefix: str, **opts: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    return f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{proxy.port}/{moto.bucket}/{prefix}" + (
        f"?{query}" if query else ""
    )


def _client(moto: MotoServer, proxy: FaultProxy, **opts: str) -> S3Client:
    return S3Client(config.build(url=_url(moto, proxy, "faults", **opts), environ={}).s3)


@pytest.mark.parametrize("fault", ["reset_request", "reset_response", "truncate", "error503", "latency"])
def test_each_fault_alone_is_survived(moto_server: MotoServer, proxy: FaultProxy, fault: str) -> None:
    client = _client(moto_server, proxy, max_attempts="6")
    _survive(client, proxy, fault)


@pytest.mark.parametrize("fault", ["reset_request", "reset_response", "truncate", "error503", "latency"])
def test_each_fault_alone_is_survived_on_ceph(ceph_target: Target, fault: str) -> None:
    port = int(ceph_target.endpoint.rsplit(":", 1)[1])
    proxy = FaultProxy("127.0.0.1", port, seed=11)
    try:
        url = ceph_target.url("faults", max_attempts="6").replace(f":{port}/", f":{proxy.port}/")
        _survive(S3Client(config.build(url=url, environ={}).s3), proxy, fault)
    finally:
        proxy.close()


def _survive(client: S3Client, proxy: FaultProxy, fault: str) -> None:
    proxy.set_faults(**{fault: 0.3})
    # A SlowDown is waited out, not failed: 30% of answers throttling drive the pacer down to a
    # few requests a second, by design (tests/integration/test_throttling.py holds its rate).
    # Fewer round trips prove the survival as well and keep the run short.
    for i in range(6 if fault == "error503" else 40):
        key = f"faults/{fault}/{uuid.uuid4()}"
        body = f"value {i} ".encode() * 20
        client.put(key, body)
        assert client.get(key).body == body
    assert proxy.stats[fault] > 0


def test_lost_reply_to_conditional_create_is_resolved_by_reading(moto_server: MotoServer, proxy: FaultProxy) -> None:
    app = Celery("faults", set_as_current=False)
    app.conf.result_backend = _url(moto_server, proxy, "faults-cas", max_attempts="8")
    backend = app.backend
    assert isinstance(backend, S3Backend) and backend.native_chords
    proxy.set_faults(reset_response=0.2)
    for _ in range(20):
        tid = str(uuid.uuid4())
        backend.store_result(tid, {"n": 1}, states.SUCCESS)  # may 412 on its own retry: read, same body
        assert backend.get_task_meta(tid, cache=False)["result"] == {"n": 1}
    key = b"chord-unlock-" + uuid.uuid4().hex.encode()
    values = [backend.incr(key) for _ in range(30)]
    assert values == list(range(1, 31))  # a lost reply never double counts
    assert proxy.stats["reset_response"] > 0


def test_outage_then_recovery(moto_server: MotoServer, proxy: FaultProxy) -> None:
    client = _client(moto_server, proxy)
    client.put("faults/outage", b"before")
    proxy.outage(2.0)
    time.sleep(0.2)
    with pytest.raises(ConnectError) as exc:
        client.get("faults/outage")
    assert "\n" not in str(exc.value)
    time.sleep(2.5)
    assert client.get("faults/outage").body == b"before"


def test_result_backend_always_retry_rides_out_an_outage(moto_server: MotoServer, proxy: FaultProxy) -> None:
    app = Celery("faults", set_as_current=False)
    app.conf.update(
        result_backend=_url(moto_server, proxy, "faults-always"),
        result_backend_always_retry=True,
        result_backend_max_retries=50,
        result_backend_base_sleep_between_retries_ms=50,
        result_backend_max_sleep_between_retries_ms=500,
    )
    backend = app.backend
    backend.store_result("warm-up", 1, states.SUCCESS)  # the probe happens before the outage
    proxy.outage(3.0)
    started = time.monotonic()
    tid = str(uuid.uuid4())
    backend.store_result(tid, "stored during the outage", states.SUCCESS)
    assert time.monotonic() - started >= 2.5
    assert backend.get_task_meta(tid, cache=False)["result"] == "stored during the outage"


def test_get_with_timeout_raises_celery_timeout_while_store_is_down(moto_server: MotoServer, proxy: FaultProxy) -> None:
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    app = Celery("faults", set_as_current=False)
    app.conf.result_backend = _url(moto_server, proxy, "faults-timeout")
    backend = app.backend
    backend.store_result("warm-up", 1, states.SUCCESS)
    proxy.outage(10.0)
    started = time.monotonic()
    with pytest.raises(CeleryTimeoutError):
        app.AsyncResult(str(uuid.uuid4())).get(timeout=2, interval=0.2)
    assert 1.8 <= time.monotonic() - started < 6


def test_corrupt_body_is_never_returned(moto_server: MotoServer, proxy: FaultProxy) -> None:
    client = _client(moto_server, proxy, max_attempts="10")
    client.put("faults/corrupt", b"x" * 5000)
    proxy.set_faults(truncate=0.5)
    for _ in range(20):
        assert client.get("faults/corrupt").body == b"x" * 5000
    assert proxy.stats["truncate"] > 0


def test_client_counts_its_retries(moto_server: MotoServer, proxy: FaultProxy) -> None:
    client = _client(moto_server, proxy, max_attempts="10")
    proxy.set_faults(reset_request=0.5)
    for i in range(10):
        client.put(f"faults/count/{i}", b"x")
    assert client.retries >= proxy.stats["reset_request"] > 0


def test_slowdowns_are_waited_out_not_retries(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """503 SlowDown is throttling: the pacer counts it, the retry count and max_attempts do not."""
    client = _client(moto_server, proxy, max_attempts="1")
    proxy.set_faults(error503=0.5)
    for i in range(10):
        client.put(f"faults/slow/{i}", b"x")
    assert client.retries == 0
    assert client.limits.writes.throttles == proxy.stats["error503"] > 0


def test_408_from_a_balancer_is_retried(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """A 408 with no S3 error document (a load balancer's idle timeout) is transient."""
    client = _client(moto_server, proxy)
    proxy.answer("PUT", "/faults/408", 408, times=1)
    client.put("faults/408", b"stored after a 408")
    assert proxy.stats["canned"] == 1 and client.retries == 1
    assert client.get("faults/408").body == b"stored after a 408"


def test_307_to_another_host_is_one_line_at_once_not_followed(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """A store that redirects elsewhere: get() names the host and the setting at once, no wait,
    and nothing is sent to the other host (the request would be signed for it)."""
    from s3result.errors import S3Error

    app = Celery("faults", set_as_current=False)
    app.conf.result_backend = _url(moto_server, proxy, "faults-307")
    redirect = b"<Error><Code>TemporaryRedirect</Code><Message>Please re-send</Message><Endpoint>s3.eu-west-2.example.net</Endpoint></Error>"
    proxy.answer(
        "GET", "/faults-307/", 307, body=redirect, headers=(("Location", "https://s3.eu-west-2.example.net/x"),)
    )
    started = time.monotonic()
    with pytest.raises(S3Error) as exc:
        app.AsyncResult(str(uuid.uuid4())).get(timeout=10, interval=0.2)
    assert time.monotonic() - started < 2
    text = str(exc.value)
    assert "\n" not in text and "s3.eu-west-2.example.net" in text and "region=" in text and "endpoint_url" in text
    assert proxy.stats["canned"] == 1


def test_gzip_from_a_proxy_that_ignores_accept_encoding_is_decoded(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """A proxy that gzips every answer (Content-Encoding: gzip): results, group joins and error
    documents read as if it were not there (httpcore does not decompress; kombu would get gzip)."""
    from celery.result import GroupResult

    from s3result.errors import NotFound

    proxy.gzip = "always"
    app = Celery("faults", set_as_current=False)
    app.conf.result_backend = _url(moto_server, proxy, "faults-gzip")
    backend = app.backend
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, tid in enumerate(ids):
        backend.store_result(tid, {"value": i, "text": "x" * 2000}, states.SUCCESS)
    assert app.AsyncResult(ids[0]).get(timeout=5) == {"value": 0, "text": "x" * 2000}
    joined = GroupResult(str(uuid.uuid4()), [app.AsyncResult(t) for t in ids], app=app).get(timeout=5)
    assert [r["value"] for r in joined] == [0, 1, 2]
    assert proxy.stats["gzip"] >= 4
    # An error document gzipped too: a missing bucket is still NoSuchBucket, not "pending".
    missing = Celery("faults", set_as_current=False)
    missing.conf.result_backend = _url(moto_server, proxy, "x").replace(
        f"/{moto_server.bucket}/", "/no-such-bucket-gz/"
    )
    with pytest.raises(NotFound) as exc:
        missing.AsyncResult(str(uuid.uuid4())).get(timeout=5)
    assert exc.value.code == "NoSuchBucket"


def test_identity_is_asked_for_so_a_polite_proxy_does_not_compress(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """Without Accept-Encoding any coding is acceptable (RFC 9110 12.5.3); s3result asks for identity."""
    proxy.gzip = "when-accepted"
    client = _client(moto_server, proxy)
    client.put("faults/identity", b"y" * 5000)
    assert client.get("faults/identity").body == b"y" * 5000
    assert proxy.stats["gzip"] == 0
