"""An HTTP-aware TCP fault proxy on 127.0.0.1, between s3result and a real store.

It reads each request from the client, decides a fault by a seeded RNG, and then either
forwards it and relays the answer, or breaks something on purpose:

- ``reset_request``: drop the connection with a RST before forwarding (nothing applied);
- ``reset_response``: forward (the store applies it), then RST mid-answer (reply lost);
- ``truncate``: forward, then send the headers and half the body and close;
- ``error503``: answer 503 SlowDown without forwarding;
- ``latency``: wait before forwarding;
- ``lose_conditional_reply``: for a PUT with If-Match or If-None-Match only, forward it (the
  store applies it or refuses it), then RST mid-answer: the writer cannot tell which;
- ``flip_byte``: forward a GET, then change one byte of a 200 answer's body (its length and
  headers kept), as a faulty NIC, disk or middlebox would.

``answer(method, path_part, status, ...)`` sends a canned answer instead of forwarding the
requests it matches (a 403 where a bucket policy would deny, a 408 from a load balancer, a
307 redirect), every time or the first ``times`` times. ``gzip`` compresses the bodies of
forwarded answers as some proxies do: ``"always"`` whatever the request's Accept-Encoding
says, ``"when-accepted"`` only when it allows gzip (no Accept-Encoding allows any coding).

``rate=`` makes it a throttling store, as S3 is per prefix: a token bucket of ``rate`` requests/s
(holding up to ``burst``) over the requests of ``rate_methods`` (writes by default: PUT, POST,
DELETE); a request over the rate is answered ``503 SlowDown`` without forwarding (with
``Retry-After`` when ``retry_after`` is set), and counted in ``stats["slowdown"]``; the requests
let through are counted in ``stats["rate_passed"]``. ``throttle(rate, ...)`` changes it later.

``outage(seconds)`` closes the listening socket, so new connections are refused as if the
store were stopped, and opens it again on the same port afterwards. Every fault injected is
counted in ``stats``.
"""

from __future__ import annotations

import functools
import random
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

FAULTS = ("reset_request", "reset_response", "truncate", "error503", "latency", "lose_conditional_reply", "flip_byte")
_SLOWDOWN = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: 120\r\n\r\n"
    + b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>".ljust(
        120
    )
)


def _slowdown(retry_after: float | None, *, close: bool = False) -> bytes:
    """S3's throttling answer (kept alive, as S3 does), optionally with Retry-After."""
    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>RATE</RequestId></Error>"
    head = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: " + str(len(body)).encode()
    if close:
        head += b"\r\nConnection: close"
    if retry_after is not None:
        head += f"\r\nRetry-After: {retry_after:g}".encode()
    return head + b"\r\n\r\n" + body


def _rst(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _read_message(
    sock: socket.socket,
    buffer: bytes,
    *,
    response: bool,
    no_body: bool = False,
    on_expect: Callable[[bytes], bool] | None = None,
) -> tuple[bytes, bytes, bytes] | None:
    """Read one HTTP message: (head, body, leftover). None when the peer closed first.

    A request with ``Expect: 100-continue`` (boto3 sends it with every PUT) waits for an
    interim answer before its body: ``on_expect(head)`` sends one, or a final answer and then
    returns False, and the body is not read (the head comes back with an empty body).
    """
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if on_expect is not None and (_header_value(head, b"expect") or b"").lower() == b"100-continue":
        head = b"\r\n".join(ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"expect:"))
        if not on_expect(head):
            return head, b"", b""
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    status_no_body = no_body or (response and head.split(b" ", 2)[1] in (b"204", b"304"))
    if length is None and response and not status_no_body:
        while True:  # read until close
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return head, rest, b""
    length = 0 if (length is None or status_no_body) else length
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return head, rest[:length], rest[length:]


def _is_conditional_put(head: bytes) -> bool:
    if not head.startswith(b"PUT "):
        return False
    names = {ln.partition(b":")[0].strip().lower() for ln in head.split(b"\r\n")[1:]}
    return b"if-match" in names or b"if-none-match" in names


def _header_value(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _stop_listening(listener: socket.socket) -> None:
    """Refuse new connections now: ``close()`` alone leaves the socket listening (and the kernel
    completing handshakes) while the accept thread is still blocked in ``accept()`` on it; a
    shutdown wakes that thread (Linux) and takes the port out of the listen state."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected/listening any more (a platform that refuses shutdown on a listener)
    listener.close()


def _accepts_gzip(head: bytes) -> bool:
    """RFC 9110 12.5.3: no Accept-Encoding means any coding is acceptable."""
    accept = _header_value(head, b"accept-encoding")
    if accept is None:
        return True
    for item in accept.lower().split(b","):
        coding, _, params = item.strip().partition(b";")
        refused = params.replace(b" ", b"").rstrip(b"0.") == b"q="  # q=0, q=0.0, ...: "not this one"
        if coding.strip() in (b"gzip", b"*") and not refused:
            return True
    return False


def _flipped(answer: bytes) -> bytes:
    """The same 200 answer with the middle byte of its body changed (XOR 1: '2' becomes '3')."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if not body or not head.startswith(b"HTTP/1.1 200"):
        return answer
    i = len(body) // 2
    return head + b"\r\n\r\n" + body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]


def _gzipped(answer: bytes) -> bytes:
    """The same answer with its body gzip-compressed and the headers saying so."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if not body:
        return answer
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    packed = packer.compress(body) + packer.flush()
    lines = [ln for ln in head.split(b"\r\n") if ln.partition(b":")[0].strip().lower() != b"content-length"]
    lines += [b"Content-Encoding: gzip", b"Content-Length: " + str(len(packed)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + packed


@dataclass
class _Canned:
    method: bytes
    path_part: bytes
    answer: bytes
    times: int | None


class FaultProxy:
    """Listen on 127.0.0.1, forward to ``upstream``, inject faults with the given odds."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 1,
        latency: float = 0.05,
        rate: float | None = None,
        burst: float | None = None,
        rate_methods: tuple[str, ...] = ("PUT", "POST", "DELETE"),
        retry_after: float | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.odds: dict[str, float] = {}
        self.latency = latency
        self.stats: Counter[str] = Counter()
        #: Request headers (lower-case names) removed before forwarding, as a meddling proxy would.
        self.strip_headers: set[bytes] = set()
        #: When set, only requests of these methods (b"PUT", ...) get the faults of ``set_faults``.
        self.only_methods: set[bytes] | None = None
        #: None, "always" or "when-accepted": gzip the bodies of forwarded answers (see the module doc).
        self.gzip: str | None = None
        self._canned: list[_Canned] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port = 0
        self._rate: float | None = None
        self._burst = 1.0
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self._rate_methods: set[bytes] = set()
        self._retry_after: float | None = None
        self.throttle(rate, burst=burst, methods=rate_methods, retry_after=retry_after)
        self._open()

    def _open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def set_faults(self, **odds: float) -> None:
        """Set the probability of each fault per request (the rest pass through)."""
        unknown = set(odds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {unknown}")
        with self._lock:
            self.odds = dict(odds)

    def throttle(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        methods: tuple[str, ...] = ("PUT", "POST", "DELETE"),
        retry_after: float | None = None,
    ) -> None:
        """Allow ``rate`` requests/s of ``methods`` (None: no limit), up to ``burst`` at once.

        ``burst`` defaults to a tenth of a second's worth (at least one request); the bucket
        starts full. Requests over the rate get ``503 SlowDown``, unforwarded.
        """
        with self._lock:
            self._rate = rate
            self._burst = max(1.0, rate / 10 if burst is None and rate else burst or 1.0)
            self._tokens = self._burst
            self._refilled = time.monotonic()
            self._rate_methods = {m.upper().encode() for m in methods}
            self._retry_after = retry_after

    def _over_rate(self, head: bytes) -> bool:
        """Take a token for this request; True when there is none (answer SlowDown)."""
        if self._rate is None or head.partition(b" ")[0] not in self._rate_methods:
            return False
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.stats["rate_passed"] += 1
                return False
            self.stats["slowdown"] += 1
            return True

    def answer(
        self,
        method: str,
        path_part: str,
        status: int,
        *,
        code: str = "",
        body: bytes | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        times: int | None = None,
    ) -> None:
        """Answer ``method`` requests whose target contains ``path_part`` with ``status``, unforwarded.

        ``code`` makes the body an S3 error document; ``body`` gives it verbatim instead (empty:
        no body). ``times`` limits the canned answer to the first so many matching requests.
        """
        if body is None:
            body = (
                f"<Error><Code>{code}</Code><Message>canned by FaultProxy</Message><RequestId>FAULT</RequestId></Error>".encode()
                if code
                else b""
            )
        lines = [f"HTTP/1.1 {status} Canned".encode(), b"Content-Length: " + str(len(body)).encode()]
        if body.startswith(b"<"):
            lines.append(b"Content-Type: application/xml")
        lines += [f"{k}: {v}".encode() for k, v in headers]
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
        with self._lock:
            self._canned.append(_Canned(method.encode(), path_part.encode(), raw, times))

    def _canned_answer(self, head: bytes) -> bytes | None:
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0]
        with self._lock:
            for rule in self._canned:
                if rule.method == method and rule.path_part in target and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    self.stats["canned"] += 1
                    return rule.answer
        return None

    def outage(self, seconds: float) -> None:
        """Refuse every connection for ``seconds`` (in a background thread), then recover."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _stop_listening(listener)
        with self._lock:
            self.stats["outage"] += 1

        def reopen() -> None:
            time.sleep(seconds)
            self._open()

        threading.Thread(target=reopen, daemon=True).start()

    def _pick(self, head: bytes = b"") -> str | None:
        if self.only_methods is not None and head.partition(b" ")[0] not in self.only_methods:
            return None
        with self._lock:
            roll = self._rng.random()
            conditional = self.odds.get("lose_conditional_reply", 0.0)
            if conditional and _is_conditional_put(head):
                if roll < conditional:
                    self.stats["lose_conditional_reply"] += 1
                    return "reset_response"
                roll = self._rng.random()
            for fault, chance in self.odds.items():
                if fault == "lose_conditional_reply":
                    continue
                if roll < chance:
                    self.stats[fault] += 1
                    return fault
                roll -= chance
        return None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if self._listener is not listener:
                _rst(conn)
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _expect(self, client: socket.socket, head: bytes, *, answered: list[bool]) -> bool:
        """``Expect: 100-continue``: throttled, the final answer now and no body read (S3 does
        the same; the connection is closed, as the client may send the body all the same);
        else ``100 Continue``."""
        if self._over_rate(head):
            client.sendall(_slowdown(self._retry_after, close=True))
            answered.append(True)
            return False
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        answered.append(False)
        return True

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                answered: list[bool] = []  # [True]: throttled at Expect, [False]: 100 Continue sent
                request = _read_message(
                    client, buffer, response=False, on_expect=functools.partial(self._expect, client, answered=answered)
                )
                if request is None or answered == [True]:
                    return
                head, body, buffer = request
                if self.strip_headers:
                    head = b"\r\n".join(
                        ln
                        for ln in head.split(b"\r\n")
                        if ln.partition(b":")[0].strip().lower() not in self.strip_headers
                    )
                if self._listener is None:
                    _rst(client)
                    return
                canned = self._canned_answer(head)
                if canned is not None:
                    client.sendall(canned)
                    continue
                if not answered and self._over_rate(head):
                    client.sendall(_slowdown(self._retry_after))
                    continue
                fault = self._pick(head)
                if fault == "reset_request":
                    _rst(client)
                    return
                if fault == "error503":
                    client.sendall(_SLOWDOWN)
                    client.close()
                    return
                if fault == "latency":
                    time.sleep(self.latency)
                answer = self._forward(head, body)
                if answer is None:
                    _rst(client)
                    return
                if self.gzip == "always" or (self.gzip == "when-accepted" and _accepts_gzip(head)):
                    gzipped = _gzipped(answer)
                    if gzipped is not answer:
                        with self._lock:
                            self.stats["gzip"] += 1
                    answer = gzipped
                if fault == "reset_response":
                    client.sendall(answer[: max(1, len(answer) // 3)])
                    _rst(client)
                    return
                if fault == "flip_byte" and head.startswith(b"GET "):
                    answer = _flipped(answer)
                if fault == "truncate" and head.startswith(b"GET "):
                    resp_head, _, resp_body = answer.partition(b"\r\n\r\n")
                    if len(resp_body) > 1:
                        client.sendall(resp_head + b"\r\n\r\n" + resp_body[: len(resp_body) // 2])
                        client.close()
                        return
                client.sendall(answer)
        except OSError:
            pass
        finally:
            try:
                client.close()
            except OSError:
                pass

    def _forward(self, head: bytes, body: bytes) -> bytes | None:
        """Send one request upstream on a fresh connection and return the whole raw answer."""
        try:
            with socket.create_connection(self.upstream, timeout=60) as up:
                up.sendall(head + b"\r\n\r\n" + body)
                message = _read_message(up, b"", response=True, no_body=head.startswith(b"HEAD "))
        except OSError:
            return None
        if message is None:
            return None
        resp_head, resp_body, _ = message
        lines = [ln for ln in resp_head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        lines.append(b"Connection: keep-alive")
        return b"\r\n".join(lines) + b"\r\n\r\n" + resp_body

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting connections: a new one is refused from now on."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _stop_listening(listener)
