"""HttpxTransport (the proxy path's transport): httpx's exceptions become ours, timeouts reach httpx.

Integration: tests/integration/test_network.py sends through it to a real proxy.
"""

from __future__ import annotations

import httpx
import pytest

from s3result.errors import ConnectError, RequestTimeout, TransportError
from s3result.s3.transport import HttpxTransport


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectTimeout("slow connect"), ConnectError),
        (httpx.PoolTimeout("pool"), ConnectError),
        (httpx.ReadTimeout("slow read"), RequestTimeout),
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ReadError("reset"), RequestTimeout),
        (httpx.RemoteProtocolError("garbage"), RequestTimeout),
        (httpx.ProxyError("407 from the proxy"), TransportError),
    ],
)
def test_httpx_errors_are_mapped(raised: Exception, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    transport = HttpxTransport(httpx.MockTransport(handler), "http://127.0.0.1:9")
    with pytest.raises(expected) as exc:
        transport.request(b"GET", b"/b/k", [(b"Host", b"127.0.0.1:9")], b"")
    assert type(exc.value) is expected and exc.value.__cause__ is raised
    transport.close()


def test_timeouts_travel_as_request_extensions() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("timeout", {}))
        return httpx.Response(200, content=b"ok")

    timed = HttpxTransport(httpx.MockTransport(handler), "http://h", timeout=httpx.Timeout(7.0, connect=2.0))
    assert timed.request(b"GET", b"/k", [], b"").body == b"ok"
    HttpxTransport(httpx.MockTransport(handler), "http://h").request(b"GET", b"/k", [], b"")
    assert seen == [{"connect": 2.0, "read": 7.0, "write": 7.0, "pool": 7.0}, {}]


def test_a_read_timeout_names_the_limit_that_ended_it() -> None:
    """Cut to a caller's deadline shorter than read_timeout: the caller's deadline is named, and
    read_timeout (never reached) is not blamed; otherwise read_timeout is named, with its value."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    transport = HttpxTransport(httpx.MockTransport(handler), "http://h", timeout=httpx.Timeout(30.0, connect=5.0))
    with pytest.raises(RequestTimeout) as caller:
        transport.request(b"GET", b"/k", [], b"", timeout=1.5)
    assert str(caller.value) == "no answer within the 1.5 s left before the caller's deadline (timed out)"
    with pytest.raises(RequestTimeout) as own:
        transport.request(b"GET", b"/k", [], b"")
    assert str(own.value) == "no answer within read_timeout (30 s) (timed out); raise read_timeout if the store is slow"
