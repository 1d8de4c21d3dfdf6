"""A store that is not S3 (a web server, a load balancer, a wrong path prefix): never "pending".

Whatever answers the endpoint with pages instead of S3 XML would otherwise lose every result
in silence: the worker's PUTs fail, and callers see PENDING until their timeout. Each case
runs against a real server on 127.0.0.1 answering every request with a page. The worker's
refusal to start runs a real ``celery worker`` process. ``s3result check`` on the same
servers: tests/integration/test_check_not_s3.py.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from s3result.errors import NOT_S3, S3Error
from s3result.s3.retry import is_permanent

ROOT = Path(__file__).resolve().parents[2]


def _server(status: int, body: bytes, content_type: str | None = "text/html; charset=utf-8") -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _page(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = _page

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def html_404() -> Iterator[int]:
    """nginx's 404 page for every path: a web server, or a wrong path prefix behind a balancer."""
    yield from _server(
        404, b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
    )


@pytest.fixture(params=[(405, b"<html><body>405 Not Allowed</body></html>"), (200, b"<!DOCTYPE html><html>hi</html>")])
def other_page(request: pytest.FixtureRequest) -> Iterator[int]:
    status, body = request.param
    yield from _server(status, body)


def _app(port: int) -> Celery:
    app = Celery(set_as_current=False)
    app.conf.result_backend = f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p"
    return app


def test_a_caller_is_told_at_once_not_after_its_timeout(html_404: int) -> None:
    app = _app(html_404)
    started = time.monotonic()
    with pytest.raises(S3Error) as exc:
        app.AsyncResult("some-task").get(timeout=5)
    assert time.monotonic() - started < 1.0
    text = str(exc.value)
    assert exc.value.code == NOT_S3 and is_permanent(exc.value), text
    assert f"http://127.0.0.1:{html_404}" in text and "not an S3 answer" in text, text
    assert "endpoint_url" in text, text
    with pytest.raises(S3Error):
        app.AsyncResult("some-task").state  # noqa: B018 - a state read raises too, never PENDING


def test_a_group_join_raises_too(html_404: int) -> None:
    from celery.result import GroupResult

    app = _app(html_404)
    started = time.monotonic()
    with pytest.raises(S3Error, match="not an S3 answer"):
        GroupResult("g", [app.AsyncResult(f"t{i}") for i in range(5)], app=app).get(timeout=5)
    assert time.monotonic() - started < 1.0


def test_storing_a_result_raises_never_drops_it(html_404: int, other_page: int) -> None:
    for port in (html_404, other_page):
        backend = _app(port).backend
        with pytest.raises(S3Error) as exc:
            backend.store_result("t1", 42, "SUCCESS")
        assert is_permanent(exc.value) and exc.value.code == NOT_S3, exc.value


@pytest.fixture
def empty_404() -> Iterator[int]:
    """A 404 with no body and no content type, as a proxy with no route for the path answers (Envoy)."""
    yield from _server(404, b"", content_type=None)


def test_a_bodiless_404_is_not_pending(empty_404: int) -> None:
    """S3 answers a GET, PUT or DELETE of a missing key with an XML error document, never nothing."""
    app = _app(empty_404)
    started = time.monotonic()
    with pytest.raises(S3Error) as exc:
        app.AsyncResult("some-task").get(timeout=5)
    assert time.monotonic() - started < 1.0
    assert exc.value.code == NOT_S3 and is_permanent(exc.value), exc.value
    assert f"127.0.0.1:{empty_404}" in str(exc.value) and "not an S3 answer" in str(exc.value), exc.value
    error = app.backend.check_store()  # the worker's start check: refuses to start
    assert error is not None and is_permanent(error), error
    with pytest.raises(S3Error, match="not an S3 answer"):
        app.AsyncResult("some-task").forget()


def test_forget_raises_never_already_gone(html_404: int) -> None:
    """A DELETE's 404 page is no "already deleted": forget() on a wrong endpoint must not seem to work."""
    app = _app(html_404)
    with pytest.raises(S3Error) as exc:
        app.AsyncResult("some-task").forget()
    assert exc.value.code == NOT_S3 and f"127.0.0.1:{html_404}" in str(exc.value), exc.value


def test_cli_forget_says_not_s3_not_nothing_stored(html_404: int, capsys: pytest.CaptureFixture[str]) -> None:
    """``s3result forget`` checks with a HEAD, whose 404 has no body: the page must still be told apart."""
    from s3result.cli.main import main

    assert main(["forget", "some-task", "--url", f"s3result+http://AKID:SECRET@127.0.0.1:{html_404}/bucket/p"]) == 1
    err = capsys.readouterr().err
    assert "not an S3 answer" in err and "nothing stored" not in err, err
    assert "SECRET" not in err


def test_the_worker_refuses_to_start_with_one_line(html_404: int, tmp_path: Path) -> None:
    app_file = tmp_path / "notstore.py"
    app_file.write_text(
        "from celery import Celery\n"
        "app = Celery('notstore', broker='memory://')\n"
        f"app.conf.result_backend = 's3result+http://AKID:SECRET@127.0.0.1:{html_404}/bucket/p'\n"
        "@app.task\n"
        "def add(x, y):\n"
        "    return x + y\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "notstore", "worker", "-P", "solo", "-l", "INFO", "--without-mingle"],
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    lines = [line for line in out.splitlines() if "worker not started" in line]
    assert len(lines) == 1, out
    assert "not an S3 answer" in lines[0] and f"127.0.0.1:{html_404}" in lines[0], lines[0]
    assert "SECRET" not in out
