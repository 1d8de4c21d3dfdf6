"""A loopback TCP proxy that counts the HTTP requests passing through it.

Used by ``s3result demo`` and the benchmarks to count S3 requests at the wire, where no
client-side shortcut can hide one. It forwards bytes untouched and parses only the
request line and Content-Length of each request (our clients never send chunked bodies).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

__all__ = ["CountingProxy"]

# Celery's key names end in a task or group id; what comes before it names the kind of key.
# A chord's tree node is its counter's key plus ``.<level>.<node>``: the kind ``chord-unlock-node``.
_KIND = re.compile(
    rb"/([A-Za-z_-]+?)-?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(\.\d+\.\d+)?(?:[ ?]|$)"
)


def _kind_name(found: re.Match[bytes] | None) -> str:
    if found is None:
        return "other"
    return found.group(1).decode() + ("-node" if found.group(2) else "")


class CountingProxy:
    """Listen on 127.0.0.1:0, forward to ``upstream``, count requests per method.

    With ``record_times``, it also keeps when each request arrived (``time.time()``), with its
    method and target: the demo reads from it the caller's pace (the time one request takes it
    on a busy store) and when each result's PUT reached the store.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, record_times: bool = False) -> None:
        self.upstream = (upstream_host, upstream_port)
        #: ``(arrival time, method, target)`` of each request, in order, when ``record_times`` is on.
        self.requests: list[tuple[float, str, str]] = []
        self._record_times = record_times
        self.counts: Counter[str] = Counter()
        #: TCP connections accepted so far: a client that pools its connections opens few.
        self.connections = 0
        #: Requests per method and kind of key, e.g. ``"PUT chord-unlock"``.
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="s3result-proxy", daemon=True)
        self._thread.start()

    @property
    def total(self) -> int:
        """All requests seen so far."""
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[str]:
        """A copy of the per-method counts."""
        with self._lock:
            return Counter(self.counts)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        buffer = b""
        need = 0  # body bytes still to skip of the current request
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                while True:
                    if need:
                        taken = min(need, len(buffer))
                        buffer, need = buffer[taken:], need - taken
                        if need:
                            break
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buffer = buffer[:end], buffer[end + 4 :]
                    request_line = head.split(b"\r\n", 1)[0]
                    method = request_line.split(b" ", 1)[0].decode("latin-1")
                    kind = _KIND.search(request_line)
                    with self._lock:
                        self.counts[method] += 1
                        self.kinds[f"{method} {_kind_name(kind)}"] += 1
                        if self._record_times:
                            target = request_line.split(b" ")[1] if b" " in request_line else b""
                            self.requests.append((time.time(), method, target.decode("latin-1")))
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            need = int(value.strip() or 0)
                # Counted before forwarding: once the answer is back, the count already shows it.
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (upstream, client):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            back.join(timeout=5)
            upstream.close()
            client.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        """Stop accepting; connections in flight finish on their own."""
        self._closed = True
        self._server.close()
