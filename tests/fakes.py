"""Small fake HTTP endpoints on 127.0.0.1 (IMDS, container credentials, STS) for the tests.

The real metadata endpoints cannot be reached from here (and must never be): these speak
the same protocol on loopback, record every request, and can be told to be slow, down or
to answer garbage.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, bytes]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    """Serve ``handler(method, path, headers, body) -> (status, body)`` on 127.0.0.1."""

    handler: Handler
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class _H(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.seen.append(Seen(self.command, self.path, headers, body))
                if outer.delay:
                    time.sleep(outer.delay)
                status, data = outer.handler(self.command, self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def creds_json(key: str, secret: str, token: str = "TOKEN", expires_in: float = 3600.0) -> bytes:
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
    return json.dumps(
        {"AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "Expiration": expiry, "Code": "Success"}
    ).encode()
