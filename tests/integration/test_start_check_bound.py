"""The worker's start check ends within its timeout, the conditional-write probe included.

The check is one GET, then the probe's verdict (taken before a prefork pool forks, so every
child inherits it). A store that answers GETs but never answers a PUT (a read-only replica
behind a balancer, a store whose disk is full and stalls writes) held the check for three read
timeouts per probe request plus three for the clean-up DELETE: 180 s with the default 30 s, the
worker's main process blocked before its first fork. Now the probe shares the check's deadline.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from celery import Celery

from s3result.errors import RequestTimeout
from s3result.s3.retry import is_permanent

NO_SUCH_KEY = b"<Error><Code>NoSuchKey</Code><Message>none</Message><RequestId>R1</RequestId></Error>"


@pytest.fixture
def writes_stall() -> Iterator[tuple[int, Counter[str]]]:
    """GET answers 404 NoSuchKey at once; PUT and DELETE are never answered."""
    seen: Counter[str] = Counter()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen["GET"] += 1
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(NO_SUCH_KEY)))
            self.end_headers()
            self.wfile.write(NO_SUCH_KEY)

        def _stall(self) -> None:
            seen[self.command] += 1
            release.wait(120)

        do_PUT = do_DELETE = _stall

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1]), seen
    release.set()
    server.shutdown()
    server.server_close()


def test_the_probe_keeps_to_the_start_checks_timeout(writes_stall: tuple[int, Counter[str]]) -> None:
    port, seen = writes_stall
    app = Celery(set_as_current=False)
    app.conf.result_backend = f"s3result+http://AKID:SECRET@127.0.0.1:{port}/bucket/p?read_timeout=3"
    started = time.monotonic()
    error = app.backend.check_store(timeout=1.0)
    elapsed = time.monotonic() - started
    assert isinstance(error, RequestTimeout) and not is_permanent(error), error  # a warning: the worker starts
    # One PUT and the clean-up's one short try; three attempts each took 18 s.
    assert seen["PUT"] == 1 and seen["DELETE"] <= 1, seen
    assert elapsed < 8.0, elapsed  # generous: the timeout is 1 s
