"""A tiny HTTP proxy process for tests: CONNECT tunnels and absolute-form forwarding, counted.

``python -m tests.httpproxy LOG`` listens on a free port of 127.0.0.1, prints the port, and
appends one line per request it handles to LOG (``CONNECT host:port`` or ``METHOD url``).
It only ever connects to 127.0.0.1: anything else is refused with 403.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
from urllib.parse import urlsplit

_LOG_LOCK = threading.Lock()


def _read_head(rfile: socket.SocketIO | object) -> list[bytes]:
    lines = []
    while True:
        line = rfile.readline(65537)  # type: ignore[attr-defined]
        if not line:
            return []
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


def _content_length(lines: list[bytes]) -> int:
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class _Handler(socketserver.StreamRequestHandler):
    log_path = ""

    def _log(self, text: str) -> None:
        with _LOG_LOCK, open(self.log_path, "a") as f:
            f.write(text + "\n")

    def handle(self) -> None:
        upstream: socket.socket | None = None
        upstream_addr: tuple[str, int] | None = None
        while True:
            head = _read_head(self.rfile)
            if not head:
                break
            method, target, _ = head[0].decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                self._log(f"CONNECT {target}")
                if host != "127.0.0.1":
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    break
                tunnel = socket.create_connection((host, int(port)))
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                self._pump(tunnel)
                break
            self._log(f"{method} {target}")
            parts = urlsplit(target)
            if parts.hostname != "127.0.0.1" or parts.port is None:
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                break
            body = self.rfile.read(_content_length(head))
            if upstream is None or upstream_addr != (parts.hostname, parts.port):
                if upstream is not None:
                    upstream.close()
                upstream_addr = (parts.hostname, parts.port)
                upstream = socket.create_connection(upstream_addr)
            origin = parts.path + (f"?{parts.query}" if parts.query else "")
            request = f"{method} {origin} HTTP/1.1\r\n".encode() + b"".join(
                line for line in head[1:] if not line.lower().startswith(b"proxy-")
            )
            upstream.sendall(request + b"\r\n" + body)
            self._relay_response(upstream, method)
        if upstream is not None:
            upstream.close()

    def _relay_response(self, upstream: socket.socket, method: str) -> None:
        reader = upstream.makefile("rb")
        head = _read_head(reader)
        status = int(head[0].split()[1])
        length = 0 if method == "HEAD" or status in (204, 304) else _content_length(head)
        self.wfile.write(b"".join(head) + b"\r\n" + reader.read(length))
        self.wfile.flush()

    def _pump(self, tunnel: socket.socket) -> None:
        def back() -> None:
            try:
                while data := tunnel.recv(65536):
                    self.connection.sendall(data)
            except OSError:
                pass
            finally:
                self.connection.close()

        threading.Thread(target=back, daemon=True).start()
        try:
            while data := self.connection.recv(65536):
                tunnel.sendall(data)
        except OSError:
            pass
        finally:
            tunnel.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    _Handler.log_path = sys.argv[1]
    with _Server(("127.0.0.1", 0), _Handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
