"""Waits under stores that misbehave in slower ways: trickling bytes, large joins on a silent
store (review of issue 14).

Every server here is a raw socket server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import GroupResult

from tests.integration.test_waits import _app


def _serve(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """Accept connections on a free loopback port; ``handle`` runs per connection in a thread."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def run(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            handle(conn)
        except OSError:
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=run, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()
    for conn in held:
        conn.close()


def _trickle(data: bytes, every: float) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            time.sleep(every)

    return handle


@pytest.fixture
def trickling_body_port() -> Iterator[int]:
    """Answers 200 at once, then its body one byte every 0.3 s: no single read waits long."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        conn.sendall(head)
        _trickle(b"x" * 1000, 0.3)(conn)

    yield from _serve(handle)


@pytest.fixture
def trickling_headers_port() -> Iterator[int]:
    """Sends its status line and headers one byte every 0.3 s."""
    yield from _serve(_trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"y" * 500 + b"\r\n\r\n", 0.3))


@pytest.fixture
def stalled_body_port() -> Iterator[int]:
    """Sends its headers, then never a byte of the body it announced."""

    def handle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxx")
        time.sleep(120)

    yield from _serve(handle)


def _elapsed_until_timeout(call: Callable[[], Any], limit: float) -> float:
    box: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit + 15)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"still waiting after {elapsed:.1f}s"
    assert box and isinstance(box[0], CeleryTimeoutError), box
    return elapsed


@pytest.mark.parametrize("server", ["trickling_body_port", "trickling_headers_port", "stalled_body_port"])
def test_get_with_timeout_holds_against_a_slow_answer(server: str, request: pytest.FixtureRequest) -> None:
    # Each read gets a byte within 0.3 s, so a per-read timeout alone never fires: the
    # deadline must cut the whole request.
    port = request.getfixturevalue(server)
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{port}/bucket/p")
    elapsed = _elapsed_until_timeout(lambda: app.AsyncResult("x").get(timeout=1), 2.0)
    assert elapsed < 2.0, f"get(timeout=1) took {elapsed:.2f}s"


def _big_group(app: Celery, size: int) -> GroupResult:
    return GroupResult("g", [app.AsyncResult(f"t{i}") for i in range(size)], app=app)


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _serve(lambda conn: time.sleep(120))


@pytest.mark.parametrize("how", ["get", "join_native"])
def test_a_large_join_on_a_silent_store_holds_its_timeout(silent_port: int, how: str) -> None:
    # 300 results, 16 GETs at a time: once the deadline passes, the GETs not yet sent must not
    # each get a fresh try (0.1 s x 300 / 16 would be ~2 s more).
    app = _app(f"s3result+http://AK:SK@127.0.0.1:{silent_port}/bucket/p")
    group = _big_group(app, 300)
    call = {"get": lambda: group.get(timeout=1), "join_native": lambda: group.join_native(timeout=1)}[how]
    elapsed = _elapsed_until_timeout(call, 2.0)
    assert elapsed < 2.0, f"a join of 300 with timeout=1 took {elapsed:.2f}s"


def test_a_hanging_host_name_lookup_does_not_stretch_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query leaves the machine: the stub resolver sleeps, as one behind a dead DNS server.
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kw: Any) -> Any:
        if host.endswith(".invalid"):
            time.sleep(6)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    app = _app("s3result+http://AK:SK@s3.slow-dns.invalid:9000/bucket/p")
    elapsed = _elapsed_until_timeout(lambda: app.AsyncResult("x").get(timeout=1), 2.0)
    assert elapsed < 2.0, f"get(timeout=1) behind a hanging resolver took {elapsed:.2f}s"


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    from s3result.testing.store import MotoServer
    from tests.integration.test_misconfig import _make_cert

    cert, key = _make_cert(tmp_path_factory.mktemp("tls"))  # names 127.0.0.1 only
    with MotoServer(bucket="tls-bucket", tls=(cert, key)) as server:
        yield server, cert


def test_a_certificate_for_another_host_is_not_told_to_set_ca_bundle(tls_moto: tuple[Any, str]) -> None:
    from s3result.errors import EndpointError

    server, cert = tls_moto
    url = server.url("tls").replace("127.0.0.1", "localhost") + f"?ca_bundle={cert}"
    app = _app(url)
    with pytest.raises(EndpointError) as exc:
        app.AsyncResult("x").get(timeout=5)
    text = str(exc.value)
    assert "does not name this host" in text and "endpoint_url" in text, text
    assert "set ca_bundle" not in text, text  # it is set, and right: the host name is wrong


def test_an_expired_token_is_refreshed_and_the_wait_goes_on(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store revokes the session token before the expiry the provider stated (rotation):
    # fetching credentials again heals it, so the wait must not fail with ExpiredToken.
    import json
    import sys

    token_file = tmp_path / "token"
    token_file.write_text("old")
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'AKIDROTATE', 'SecretAccessKey': 'sk', "
        f"'SessionToken': pathlib.Path({str(token_file)!r}).read_text(), 'Expiration': '2999-01-01T00:00:00Z'}}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile rotate]\ncredential_process = {sys.executable} {script}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    result = json.dumps({"status": "SUCCESS", "result": 7, "task_id": "x", "traceback": None, "children": []})

    def handle(conn: socket.socket) -> None:
        # _serve read the request head already; answer by the token it was signed with.
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(result), result.encode())
        )

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536)
                if b"x-amz-security-token: old" in head.lower():
                    body = b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        port = server.getsockname()[1]
        app = _app(f"s3result+http://127.0.0.1:{port}/bucket/p?profile=rotate")
        app.backend.client._credentials.get()  # credentials fetched before the rotation
        token_file.write_text("new")
        assert app.AsyncResult("x").get(timeout=5) == 7
    finally:
        stop.set()
        server.close()
