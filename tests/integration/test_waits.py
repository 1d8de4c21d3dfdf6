"""Waiting for results against real servers: deadlines hold, permanent errors raise at once,
polls back off from a short first delay, reads are bounded (issue 14).

Every server here listens on 127.0.0.1 and is started by the test: moto (auth on), Ceph RGW
for the missing bucket, and raw sockets for a silent store and a plain-HTTP port behind TLS.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import GroupResult

from s3result.errors import AccessDenied, BodyTooLarge, EndpointError, NotFound
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.retry import is_permanent
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer, free_port


def _app(url: str, **conf: Any) -> Celery:
    app = Celery(f"waits-{uuid.uuid4().hex[:6]}", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    app.conf.update(conf)
    return app


def _missing_bucket_url(url: str, bucket: str) -> str:
    return url.replace(f"/{bucket}/", "/no-such-bucket-i14/", 1)


def _raises_within(seconds: float, fn: Any) -> BaseException:
    """Run fn in a thread; it must raise within ``seconds`` (a hang fails, not blocks, the test)."""
    box: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds + 10)
    assert not thread.is_alive(), f"still waiting after {seconds + 10:g}s"
    elapsed = time.monotonic() - started
    assert box, "returned instead of raising"
    assert elapsed < seconds, f"raised after {elapsed:.2f}s, over {seconds:g}s: {box[0]!r}"
    return box[0]


# -- a missing bucket is an error, never "pending" ---------------------------------------------


@pytest.mark.parametrize("how", ["get", "wait_for", "group", "state"])
def test_missing_bucket_raises_within_a_second_on_moto(moto_server: MotoServer, how: str) -> None:
    app = _app(_missing_bucket_url(moto_server.url("w"), moto_server.bucket))
    result = app.AsyncResult(str(uuid.uuid4()))
    calls = {
        "get": lambda: result.get(),
        "wait_for": lambda: app.backend.wait_for(result.id),
        "group": lambda: GroupResult("g", [result, app.AsyncResult("x")], app=app).get(),
        "state": lambda: result.state,
    }
    exc = _raises_within(1.0, calls[how])
    assert isinstance(exc, NotFound) and exc.code == "NoSuchBucket"
    assert "'no-such-bucket-i14' does not exist" in str(exc) and "\n" not in str(exc)
    assert not app.backend.exception_safe_to_retry(exc)


def test_missing_bucket_raises_within_a_second_on_ceph(ceph_target: Any) -> None:
    url = ceph_target.url("w").replace(f"/{ceph_target.bucket}/", "/no-such-bucket-i14/", 1)
    app = _app(url)
    exc = _raises_within(1.0, lambda: app.AsyncResult(str(uuid.uuid4())).get())
    assert isinstance(exc, NotFound) and exc.code == "NoSuchBucket"
    assert "'no-such-bucket-i14' does not exist" in str(exc)


def test_missing_bucket_with_always_retry_does_not_spin(moto_server: MotoServer) -> None:
    app = _app(_missing_bucket_url(moto_server.url("w"), moto_server.bucket), result_backend_always_retry=True)
    exc = _raises_within(1.0, lambda: app.backend.get_task_meta("x"))
    assert "NoSuchBucket" in str(exc)


def test_s3result_get_reports_a_missing_bucket(moto_server: MotoServer) -> None:
    url = _missing_bucket_url(moto_server.url("w"), moto_server.bucket)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "s3result.cli.main", "get", "--url", url, "some-task"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "PENDING" not in proc.stdout
    assert "NoSuchBucket" in proc.stderr and "no-such-bucket-i14" in proc.stderr, proc.stderr
    assert moto_server.secret_key not in proc.stderr + proc.stdout
    assert time.monotonic() - started < 30


def test_denied_credentials_raise_at_once_and_are_permanent(moto_server: MotoServer) -> None:
    url = moto_server.url("w").replace(moto_server.secret_key, "wrong-secret-key")
    app = _app(url)
    exc = _raises_within(1.0, lambda: app.AsyncResult("x").get())
    assert isinstance(exc, AccessDenied) and "SignatureDoesNotMatch" in str(exc)
    assert is_permanent(exc) and not app.backend.exception_safe_to_retry(exc)


# -- deadlines hold whatever the store does ----------------------------------------------------


@pytest.mark.parametrize("how", ["get", "group"])
def test_get_with_timeout_returns_within_two_seconds_from_a_silent_store(silent_port: int, how: str) -> None:
    # Default timeouts (read_timeout=30, 3 attempts): each poll still gets only the time left.
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{silent_port}/bucket/p")
    result = app.AsyncResult("x")
    call = {
        "get": lambda: result.get(timeout=1),
        "group": lambda: GroupResult("g", [result, app.AsyncResult("y")], app=app).get(timeout=1),
    }[how]
    exc = _raises_within(2.0, call)
    assert isinstance(exc, CeleryTimeoutError)


def test_a_callers_own_timeout_is_named_as_what_ended_the_wait(silent_port: int) -> None:
    """get(timeout=2) on a silent store: the caller's deadline ended it, not read_timeout (30 s,
    never reached), so the message must not tell the caller to raise read_timeout."""
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{silent_port}/bucket/p")
    exc = _raises_within(2.0, lambda: app.AsyncResult("x").get(timeout=1))
    assert isinstance(exc, CeleryTimeoutError)
    text = str(exc)
    assert "s left before the caller's deadline (timed out)" in text and "raise read_timeout" not in text, text
    assert f"to http://127.0.0.1:{silent_port}" in text, text


def test_a_request_ended_by_read_timeout_names_read_timeout(silent_port: int) -> None:
    settings = config.build(
        url=f"s3result+http://AK:SK@127.0.0.1:{silent_port}/bucket/p?read_timeout=0.3&max_attempts=1", environ={}
    )
    client = S3Client(settings.s3)
    try:
        exc = _raises_within(2.0, lambda: client.get_or_none("k", deadline=time.monotonic() + 30))
    finally:
        client.close()
    text = str(exc)
    assert "no answer within read_timeout (0.3 s)" in text and "raise read_timeout if the store is slow" in text, text
    assert "caller's deadline" not in text


def test_get_with_timeout_holds_when_the_store_refuses_connections() -> None:
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{free_port()}/bucket/p")
    started = time.monotonic()
    with pytest.raises(CeleryTimeoutError):
        app.AsyncResult("x").get(timeout=1)
    assert 0.9 < time.monotonic() - started < 2.0  # refused can heal: polled until the deadline


# -- permanent endpoint errors raise at once, with the fix ----------------------------------------


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A plain-HTTP listener: a TLS client meets an HTTP answer to its handshake."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()


def test_tls_to_a_plain_http_port_raises_at_once_with_the_fix(plain_http_port: int) -> None:
    app = _app(f"s3result+https://AK:SK@127.0.0.1:{plain_http_port}/bucket/p")
    exc = _raises_within(2.0, lambda: app.AsyncResult("x").get())
    assert isinstance(exc, EndpointError)
    text = str(exc)
    assert "the server speaks plain HTTP: use s3result+http://" in text and "\n" not in text
    assert not app.backend.exception_safe_to_retry(exc)


def test_unresolvable_host_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query leaves the machine: the resolver answers "no such name" itself.
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kw: Any) -> Any:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    app = _app("s3result+http://AK:SK@s3.no-such-host.invalid:9000/bucket/p")
    exc = _raises_within(2.0, lambda: app.AsyncResult("x").get())
    assert isinstance(exc, EndpointError) and "cannot resolve" in str(exc) and "endpoint_url" in str(exc)
    assert not app.backend.exception_safe_to_retry(exc)


def test_temporary_resolver_failure_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, *args: Any, **kw: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    app = _app("s3result+http://AK:SK@s3.flaky.invalid:9000/bucket/p")
    with pytest.raises(CeleryTimeoutError):
        app.AsyncResult("x").get(timeout=0.5)


# -- adaptive polling, counted at the wire --------------------------------------------------------


def _counted_app(moto_server: MotoServer, proxy: CountingProxy, **options: Any) -> Celery:
    url = moto_server.url("polls").replace(f":{moto_server.port}/", f":{proxy.port}/")
    return _app(url, s3result_options=options)


@pytest.mark.parametrize(("first", "ready_after", "most"), [(0.025, 0.15, 5), (0.025, 1.5, 9), ("off", 0.15, 2)])
def test_polls_back_off_from_the_first_delay(
    moto_server: MotoServer, first: Any, ready_after: float, most: int
) -> None:
    proxy = CountingProxy(moto_server.host, moto_server.port)
    try:
        app = _counted_app(moto_server, proxy, poll_initial_delay=first)
        writer = _app(moto_server.url("polls"))  # not through the proxy: only the polls count
        task_id = str(uuid.uuid4())
        timer = threading.Timer(ready_after, lambda: writer.backend.store_result(task_id, 42, states.SUCCESS))
        started = time.monotonic()
        timer.start()
        assert app.AsyncResult(task_id).get(timeout=10) == 42
        elapsed = time.monotonic() - started
        timer.join()
        gets = proxy.snapshot()["GET"]
    finally:
        proxy.close()
    # Polls at 0, d, 3d, 7d, ... then every 0.5 s: seen by the first poll after the write.
    assert 2 <= gets <= most, gets
    if first == "off":
        assert elapsed >= 0.5  # fixed polling: the second poll comes a whole interval later
    assert elapsed < ready_after + 0.5 + 1.0  # loaded-box margin on top of one interval


def test_group_join_polls_only_what_is_missing(moto_server: MotoServer) -> None:
    proxy = CountingProxy(moto_server.host, moto_server.port)
    try:
        app = _counted_app(moto_server, proxy)
        writer = _app(moto_server.url("polls"))
        ids = [str(uuid.uuid4()) for _ in range(10)]
        for task_id in ids[:8]:
            writer.backend.store_result(task_id, task_id, states.SUCCESS)
        late = threading.Timer(0.3, lambda: [writer.backend.store_result(t, t, states.SUCCESS) for t in ids[8:]])
        before = proxy.snapshot()["GET"]
        late.start()
        group = GroupResult("g", [app.AsyncResult(t) for t in ids], app=app)
        assert group.get(timeout=10) == ids
        late.join()
        gets = proxy.snapshot()["GET"] - before
    finally:
        proxy.close()
    # Round 1 reads all ten; later rounds (at 25, 75, 175, 375 ms, ...) read one missing result,
    # and the other only once that one is ready. Fixed polling: 10 + 2 at 0 and 500 ms.
    assert 10 + 3 <= gets <= 10 + 8, gets


def test_a_join_reads_every_missing_result_once_the_first_is_ready(moto_server: MotoServer) -> None:
    proxy = CountingProxy(moto_server.host, moto_server.port)
    try:
        app = _counted_app(moto_server, proxy)
        writer = _app(moto_server.url("polls"))
        ids = [str(uuid.uuid4()) for _ in range(30)]
        late = threading.Timer(1.0, lambda: [writer.backend.store_result(t, t, states.SUCCESS) for t in ids])
        late.start()
        group = GroupResult("g", [app.AsyncResult(t) for t in ids], app=app)
        assert group.get(timeout=10) == ids
        late.join()
        gets = proxy.snapshot()["GET"]
    finally:
        proxy.close()
    # 30 at 0 s; one a round at 25 ... 775 ms and 1.275 s; the other 29 once it is ready.
    # Polling all that is missing each round would cost 30 x 7 = 210.
    assert 30 + 29 + 5 <= gets <= 30 + 29 + 8, gets


# -- bounded reads ------------------------------------------------------------------------------


def test_a_body_over_max_result_size_is_refused_naming_the_setting(moto_server: MotoServer) -> None:
    big = S3Client(config.build(url=moto_server.url("bounded"), environ={}).s3)
    big.put("bounded/k", b"x" * 5000)
    big.put("bounded/celery-task-meta-k", b"x" * 5000)
    small = S3Client(config.build(url=moto_server.url("bounded") + "?max_result_size=4KiB", environ={}).s3)
    with pytest.raises(BodyTooLarge) as exc:
        small.get("bounded/k")
    assert "max_body_size=4096 (max_result_size" in str(exc.value) and "bounded/k" in str(exc.value)
    assert small.head("bounded/k").size == 5000  # a HEAD's length is no body to refuse
    app = _app(moto_server.url("bounded") + "?max_result_size=4KiB")
    exc2 = _raises_within(1.0, lambda: app.backend.wait_for("k"))
    assert isinstance(exc2, BodyTooLarge)  # permanent: not polled until a timeout


def test_error_bodies_are_cut_at_a_small_cap() -> None:
    from s3result.s3.bodies import ERROR_BODY_LIMIT, read_body

    chunks = [b"<Error><Code>SlowDown</Code>" + b"x" * 60_000, b"y" * 10_000_000]
    body = read_body(iter(chunks), 503, None, 1 << 30)
    assert len(body) == ERROR_BODY_LIMIT and body.startswith(b"<Error><Code>SlowDown")


def test_a_64_mib_result_is_held_about_once_on_the_way_in_and_out(moto_server: MotoServer) -> None:
    client = S3Client(config.build(url=moto_server.url("big"), environ={}).s3)
    size = 64 * 1024 * 1024
    body = b"\x07" * size
    client.put("big/64mib", body)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        client.put("big/64mib", body)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        found = client.get("big/64mib")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.body == body
    del found
    client.delete("big/64mib")
    # The caller's body is not counted on the way in; on the way out the body itself is.
    assert put_peak < 0.1 * size, put_peak
    assert get_peak < 1.3 * size, get_peak


# -- the worker's start-up check (the real worker is in tests/e2e/test_waits.py) ------------------


def test_start_check_is_one_read_and_the_probe_and_lets_a_transient_failure_pass(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The verdict's GET, then the conditional-write probe (taken here so that forked children inherit
    it) and the verdict's PUT; once the verdict is known, one GET. tests/integration/test_stored_verdict.py
    has a later process's check, on a verdict already stored."""
    from types import SimpleNamespace

    from s3result import worker as worker_module

    worker_module.forget_checks()  # whatever an earlier test left: this process checks afresh
    proxy = CountingProxy(moto_server.host, moto_server.port)
    try:
        healthy = _counted_app(moto_server, proxy)
        worker_module.check_store_at_start(sender=SimpleNamespace(app=healthy))
        assert proxy.snapshot() == {"GET": 1 + 2, "PUT": 4 + 1, "DELETE": 1}
        worker_module.forget_checks()
        worker_module.check_store_at_start(sender=SimpleNamespace(app=healthy))
        assert proxy.snapshot() == {"GET": 2 + 2, "PUT": 4 + 1, "DELETE": 1}  # the verdict is kept
    finally:
        proxy.close()
        worker_module.forget_checks()
    down = _app(f"s3result+http://AK:SK@127.0.0.1:{free_port()}/bucket/p")
    with caplog.at_level("WARNING", logger="s3result.worker"):
        worker_module.check_store_at_start(sender=SimpleNamespace(app=down))  # refused: may heal
    worker_module.forget_checks()
    assert "starting anyway" in caplog.text and "Connection refused" in caplog.text
    missing = _app(_missing_bucket_url(moto_server.url("w"), moto_server.bucket))
    with pytest.raises(SystemExit):
        worker_module.check_store_at_start(sender=SimpleNamespace(app=missing))
    worker_module.forget_checks()


@pytest.mark.parametrize("how", ["get", "group", "join_native"])
def test_timeout_against_a_refusing_endpoint_names_the_endpoint_and_the_error(how: str) -> None:
    """A wrong port: the TimeoutError says what went wrong, not only "The operation timed out."."""
    from s3result.errors import ConnectError

    port = free_port()
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{port}/bucket/p")
    result = app.AsyncResult("x")
    group = GroupResult("g", [result, app.AsyncResult("y")], app=app)
    call = {
        "get": lambda: result.get(timeout=0.5),
        "group": lambda: group.get(timeout=0.5),
        "join_native": lambda: group.join_native(timeout=0.5),
    }[how]
    exc = _raises_within(2.0, call)
    assert isinstance(exc, CeleryTimeoutError)
    text = str(exc)
    assert "timed out" in text and f"127.0.0.1:{port}" in text and "Connection refused" in text, text
    assert isinstance(exc.__cause__, ConnectError) and "\n" not in text
