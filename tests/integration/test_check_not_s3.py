"""``s3result check`` against a server that answers, but is not an S3 API (review of issue 15).

A web server, a login portal or another service on the port is the endpoint's mistake: the
network layer fails with the endpoint's fix; authentication is never "accepted" on its word,
a 404 page is never S3's "no such key", and a 403 page never brings an IAM grant. Servers are
real sockets on 127.0.0.1 started by the tests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from s3result.cli import main


def _serve(answer: bytes) -> Iterator[int]:
    """Answer every request on a connection with ``answer`` (or, without one, hold it open silently)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return
                if answer:
                    conn.sendall(answer)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    server.close()


def _page(status: str, body: bytes, content_type: str = "text/html") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture(
    params=[
        _page("200 OK", b"<html><body>Welcome to nginx!</body></html>"),
        _page("404 Not Found", b"<html><body><h1>404 Not Found</h1></body></html>"),
        _page("403 Forbidden", b"<html><body><h1>403 Forbidden</h1></body></html>"),
        _page("404 Not Found", b""),
    ],
    ids=["html-200", "html-404", "html-403", "empty-404"],
)
def web_server(request: pytest.FixtureRequest) -> Iterator[int]:
    yield from _serve(request.param)


def test_a_web_server_is_the_endpoints_mistake(web_server: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--url", f"s3result+http://AKID:SECRET@127.0.0.1:{web_server}/bucket/p"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[FAIL] network:" in out and "not as an S3 API" in out, out
    assert "fix: check endpoint_url" in out, out
    assert "authentication" not in out and "GET missing key" not in out and "PUT:" not in out, out
    assert "grant" not in out and "arn:aws" not in out, out


@pytest.fixture
def banner_server() -> Iterator[int]:
    """Another service on the port: it speaks first, neither TLS nor HTTP (an SSH banner)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            try:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def test_https_to_a_port_that_is_neither_tls_nor_http(banner_server: int, capsys: pytest.CaptureFixture[str]) -> None:
    """The TLS handshake fails, but the server is not plain HTTP either: never "use s3result+http://"."""
    code = main(["check", "--url", f"s3result+https://AKID:SECRET@127.0.0.1:{banner_server}/bucket/p"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[FAIL] network:" in out and "neither TLS nor HTTP" in out, out
    assert "plain HTTP" not in out and "s3result+http://" not in out, out
    assert "fix: check endpoint_url's port" in out, out
