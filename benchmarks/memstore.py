"""An in-memory S3 fake that keeps up: keep-alive HTTP/1.1, one asyncio loop, its own process.

For benchmarks where the store must not be the bottleneck (many callers at once): GET, HEAD,
PUT and DELETE on keys, ``If-None-Match: *`` and ``If-Match`` on PUT (412; ``If-Match`` on a
missing key 404, as moto), MD5 ETags and ``x-amz-meta-*`` kept with the object. It checks no
signature. It listens on several loopback ports that share one bucket, counting requests per
port, so the worker's and the callers' requests are counted apart at the wire;
``GET /__stats`` answers the counts and the process's CPU seconds (to show it kept up).

    python -m benchmarks.memstore 2     # prints the ports, one line, then serves until killed
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

_MISSING = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code>"
    b"<Message>The specified key does not exist.</Message></Error>"
)
_FAILED = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code></Error>"
_REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 412: "Precondition Failed"}


class _Store:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, list[tuple[str, str]]]] = {}
        self.counts: dict[int, Counter[str]] = {}

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        key = path.split("?", 1)[0]
        if key.count("/") < 2 or key.endswith("/"):  # the bucket itself (HEAD, location...)
            return 200, [("Content-Type", "application/xml")], b"<?xml version='1.0'?><ListBucketResult/>"
        found = self.objects.get(key)
        if method in ("GET", "HEAD"):
            if found is None:
                return 404, [("Content-Type", "application/xml")], _MISSING
            data, etag, meta = found
            return 200, [("ETag", etag), *meta], data if method == "GET" else b""
        if method == "DELETE":
            self.objects.pop(key, None)
            return 204, [], b""
        if method == "PUT":
            match = headers.get("if-match")
            if headers.get("if-none-match") == "*" and found is not None:
                return 412, [("Content-Type", "application/xml")], _FAILED
            if match is not None:
                if found is None:
                    return 404, [("Content-Type", "application/xml")], _MISSING
                if match.strip('"') != found[1].strip('"'):
                    return 412, [("Content-Type", "application/xml")], _FAILED
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            meta = [(k, v) for k, v in headers.items() if k.startswith("x-amz-meta-")]
            self.objects[key] = (body, etag, meta)
            return 200, [("ETag", etag)], b""
        return 405, [], b""


async def _serve(store: _Store, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    counts = store.counts[port]
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                raw = await reader.readline()
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, _, value = raw.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            size = int(headers.get("content-length") or 0)
            body = await reader.readexactly(size) if size else b""
            if target == "/__stats":
                status, extra = 200, [("Content-Type", "application/json")]
                payload = json.dumps(
                    {"counts": {str(p): dict(c) for p, c in store.counts.items()}, "cpu": time.process_time()}
                ).encode()
            else:
                counts[method] += 1
                status, extra, payload = store.answer(method, target, headers, body)
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Length: {len(payload)}"]
            head += [f"{k}: {v}" for k, v in extra]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else payload))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


async def _main(ports: int) -> None:
    store = _Store()
    servers = []
    for _ in range(ports):

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _serve(store, writer.get_extra_info("sockname")[1], reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        store.counts[server.sockets[0].getsockname()[1]] = Counter()
        servers.append(server)
    print(" ".join(str(p) for p in store.counts), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


class MemStore:
    """The fake in a child process: ``ports`` (the first for the worker, the next for callers)."""

    def __init__(self, ports: int = 2) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.memstore", str(ports)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.ports = [int(p) for p in self.proc.stdout.readline().split()]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[0]}/__stats", timeout=10) as answer:
            out: dict[str, Any] = json.load(answer)
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
