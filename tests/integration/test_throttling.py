"""Throttling is back-pressure: a store answering 503 SlowDown never costs a result.

Through the testing kit's throttling proxy (``FaultProxy(rate=...)``) in front of moto: 10,000
stores from 16 threads all land and read back equal; a store that throttles past
``throttle_wait`` gives ``Throttled`` naming the setting; a waiting ``get(timeout=T)`` on a
store that throttles reads returns within about T; a PUT applied by the store whose reply was
lost, then throttled, still ends as one stored result. Unit side: tests/test_limiter.py;
real workers: tests/e2e/test_throttling.py; rates: benchmarks/throttle.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, states
from celery.exceptions import TimeoutError as CeleryTimeoutError

from s3result.errors import RequestTimeout, Throttled
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

STORES = 10_000
THREADS = 16


def _app(moto: MotoServer, proxy: FaultProxy, prefix: str, query: str = "") -> Celery:
    app = Celery("throttling", set_as_current=False)
    app.conf.result_backend = moto.url(prefix).replace(f":{moto.port}/", f":{proxy.port}/") + query
    return app


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_server.host, moto_server.port, latency=0.0)
    yield p
    p.close()


def test_ten_thousand_stores_through_slowdown_lose_nothing(moto_server: MotoServer, proxy: FaultProxy) -> None:
    proxy.throttle(150)  # writes over 150/s get 503 SlowDown; reads unlimited
    app = _app(moto_server, proxy, "throttled-10k")
    ids = [f"t{i}-{uuid.uuid4().hex[:8]}" for i in range(STORES)]
    raised: list[BaseException] = []

    def store(part: list[str]) -> None:
        backend = app.backend  # thread-local, as in a threads pool; the client is the process's
        for task_id in part:
            try:
                backend.store_result(task_id, {"id": task_id, "pad": "x" * 64}, states.SUCCESS)
            except BaseException as exc:  # noqa: BLE001 - counted: a result lost
                raised.append(exc)

    threads = [threading.Thread(target=store, args=(ids[i::THREADS],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not raised, (len(raised), raised[:3])
    assert proxy.stats["slowdown"] > 0, proxy.stats  # the store really did throttle
    assert app.backend.client.limits.writes.cuts > 0
    backend = app.backend
    for start in range(0, STORES, 500):
        batch = ids[start : start + 500]
        found = backend.client.get_many([backend.store.key(backend.get_key_for_task(t)) for t in batch])
        for task_id, item in zip(batch, found, strict=True):
            assert item is not None, task_id
            assert backend.decode_result(item.body)["result"] == {"id": task_id, "pad": "x" * 64}


def test_a_store_that_throttles_past_throttle_wait_is_a_loud_error(moto_server: MotoServer, proxy: FaultProxy) -> None:
    proxy.answer("PUT", "/throttled-forever/", 503, code="SlowDown")  # every write, forever
    app = _app(moto_server, proxy, "throttled-forever", "?conditional_writes=etag&throttle_wait=2")
    started = time.monotonic()
    with pytest.raises(Throttled) as exc:
        app.backend.store_result("forever", 1, states.SUCCESS)
    elapsed = time.monotonic() - started
    message = str(exc.value)
    assert "SlowDown" in message and "throttling" in message and "throttle_wait=2s" in message
    assert "raise throttle_wait" in message
    assert elapsed < 2.5, elapsed  # never past throttle_wait: raised once the next turn would be
    assert proxy.stats["canned"] >= 2  # asked again, not one answer raised


def test_a_wait_on_a_store_throttling_reads_returns_within_its_timeout(
    moto_server: MotoServer, proxy: FaultProxy
) -> None:
    """get(timeout=T) of a pending result while every GET is throttled: TimeoutError at about T."""
    proxy.throttle(1, burst=1, methods=("GET",))
    app = _app(moto_server, proxy, "throttled-reads")
    for timeout in (0.5, 2.0):
        started = time.monotonic()
        with pytest.raises(CeleryTimeoutError):
            app.AsyncResult(uuid.uuid4().hex).get(timeout=timeout, interval=0.1)
        assert time.monotonic() - started < timeout + 1.0
    assert proxy.stats["slowdown"] > 0
    assert app.backend.client.limits.reads.active and not app.backend.client.limits.writes.active


def test_a_lost_reply_then_slowdown_still_stores_the_result_once(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """The store applied the PUT, its reply was lost, the retry was throttled, the next found it stored."""
    script = ["reset_response", "error503", "error503"]

    def pick(head: bytes = b"") -> str | None:
        if head.startswith(b"PUT ") and b"lost-then-slow" in head and script:
            fault = script.pop(0)
            proxy.stats[fault] += 1
            return fault
        return None

    proxy._pick = pick  # type: ignore[method-assign]
    app = _app(moto_server, proxy, "lost-then-slow", "?conditional_writes=etag")
    app.backend.store_result("lost-then-slow", {"v": 1}, states.SUCCESS)
    assert script == [] and proxy.stats["reset_response"] == 1 and proxy.stats["error503"] == 2
    assert app.AsyncResult("lost-then-slow").get(timeout=10) == {"v": 1}
    assert app.backend.client.limits.writes.throttles == 2


GREENLETS = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import sys, gevent
    from celery import Celery
    url, n = sys.argv[1], int(sys.argv[2])
    app = Celery(set_as_current=False)
    app.conf.result_backend = url
    def store(i):
        app.backend.store_result(f"g{i}", i, "SUCCESS")
        return app.backend.client.limits.writes
    jobs = [gevent.spawn(store, i) for i in range(n)]
    gevent.joinall(jobs, raise_error=True)
    pacers = {id(j.value) for j in jobs}
    assert len(pacers) == 1, pacers
    pacer = jobs[0].value
    assert pacer.throttles > 0, pacer
    for i in range(n):
        assert app.AsyncResult(f"g{i}").get(timeout=10) == i
    print("ok", pacer)
    """
)


def test_gevent_greenlets_share_one_pacer(moto_server: MotoServer, proxy: FaultProxy) -> None:
    proxy.throttle(40)
    url = moto_server.url("greenlets").replace(f":{moto_server.port}/", f":{proxy.port}/")
    done = subprocess.run(
        [sys.executable, "-c", GREENLETS, url, "300"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok"), done.stdout
    assert proxy.stats["slowdown"] > 0


def test_throttle_wait_0_raises_only_what_the_store_throttled(moto_server: MotoServer, proxy: FaultProxy) -> None:
    """throttle_wait=0 against a store allowing 20 writes/s: a store raises Throttled only when the
    store answered it SlowDown, never because the pacer held it back unsent."""
    proxy.throttle(20)
    app = _app(moto_server, proxy, "throttle-wait-0", "?conditional_writes=etag&throttle_wait=0")
    raised: list[Throttled] = []
    for i in range(60):
        try:
            app.backend.store_result(f"tw0-{i}", i, states.SUCCESS)
        except Throttled as exc:
            raised.append(exc)
    assert raised, "the store should have throttled some"
    assert len(raised) <= proxy.stats["slowdown"], (len(raised), proxy.stats)
    assert not [e for e in raised if "(0 slow-down answers" in str(e)], str(raised[0])


def test_a_wait_on_reads_held_by_a_long_retry_after_returns_within_its_timeout(
    moto_server: MotoServer, proxy: FaultProxy
) -> None:
    """Every GET answered 503 SlowDown with Retry-After: 30: get(timeout=T) still ends at about T."""
    proxy.answer("GET", "/retry-after-reads/", 503, code="SlowDown", headers=(("Retry-After", "30"),))
    app = _app(moto_server, proxy, "retry-after-reads")
    for timeout in (0.5, 2.0):
        started = time.monotonic()
        with pytest.raises(CeleryTimeoutError):
            app.AsyncResult(uuid.uuid4().hex).get(timeout=timeout, interval=0.1)
        assert time.monotonic() - started < timeout + 1.0
    assert proxy.stats["canned"] >= 1


def test_a_store_that_stops_answering_while_paced_is_bounded_by_the_timeouts(
    moto_server: MotoServer, proxy: FaultProxy
) -> None:
    """The store has throttled (both pacers on), then accepts connections and never answers: a
    store ends in RequestTimeout within its attempts' read_timeout, a wait at its timeout."""
    proxy.latency = 100.0  # "never": longer than any bound below
    app = _app(moto_server, proxy, "paced-silent", "?conditional_writes=etag&read_timeout=1&throttle_wait=5")
    limits = app.backend.client.limits
    limits.writes.throttled(0.0)
    limits.reads.throttled(0.0)
    proxy.set_faults(latency=1.0)
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="read_timeout"):
        app.backend.store_result("paced-silent", 1, states.SUCCESS)
    assert time.monotonic() - started < 3 * 1.0 + 3.0  # 3 attempts of 1 s, their backoff and turns
    started = time.monotonic()
    with pytest.raises(CeleryTimeoutError):
        app.AsyncResult("paced-silent-wait").get(timeout=2.0, interval=0.1)
    assert time.monotonic() - started < 2.0 + 1.0


def test_the_docs_throttling_snippet_runs_and_closes_its_proxy(moto_server: MotoServer) -> None:
    """docs/testing.md's form: the proxy as a context manager, throttling writes, then closed."""
    import socket

    with FaultProxy(moto_server.host, moto_server.port, rate=5) as proxy:
        app = _app(moto_server, proxy, "docs-snippet")
        for i in range(20):
            app.backend.store_result(f"docs-{i}-{uuid.uuid4().hex[:6]}", i, states.SUCCESS)
        assert proxy.stats["slowdown"] > 0
        port = proxy.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
