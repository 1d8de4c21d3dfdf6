"""A directory-bucket front for the testing kit's store: S3 Express One Zone on loopback.

No emulator implements ``CreateSession`` (moto does not), so this front plays the zonal
endpoint in front of a ``MotoServer``: it answers ``GET /<bucket>?session`` with session
credentials, checks the session token and the ``s3express`` signature of every object
request, and forwards what passes to moto, signed again with the account's real keys. Like a
directory bucket, it answers ETags that are not the body's MD5 (and maps them back in
``If-Match``), so nothing in a client may lean on MD5 ETags there.

Signatures are recomputed step by step with ``sigv4``'s pure functions over the headers each
request says it signed, under ``s3express`` (the kit needs no boto); tests/test_express.py holds
those steps equal to botocore's own S3 Express signer. What a test can turn: ``session_ttl`` (seconds a session lives, 300 on
AWS), ``refuse(n)`` (the next ``n`` object requests answered ``400 ExpiredToken`` whatever
their session), ``expire_sessions()``. ``stats`` counts sessions created, requests verified,
forwarded, conditional (``if-match``, ``if-none-match``), refused and rejected (by error code).

Addressing: path-style (``/<bucket>/<key>``, as clients address an IP endpoint) or
virtual-hosted (``Host: <bucket>.<anything>``).
"""

from __future__ import annotations

import hashlib
import http.client
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..s3 import sigv4

if TYPE_CHECKING:
    from .store import MotoServer

__all__ = ["DirectoryBucketFront"]

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})
_AUTH_HEADERS = frozenset(
    {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-s3session-token", "x-amz-security-token"}
)
_WRITES = frozenset({"PUT", "DELETE", "POST"})


@dataclass(frozen=True)
class _Session:
    access_key: str
    secret_key: str
    expiry: float
    owner: str  # the account access key that created it
    read_only: bool


class _Rejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class DirectoryBucketFront:
    """Listen on 127.0.0.1 as the zonal endpoint of directory bucket ``bucket``; store in ``store``."""

    def __init__(
        self,
        store: MotoServer,
        *,
        bucket: str = "results--usw2-az1--x-s3",
        region: str = "us-west-2",
        session_ttl: float = 300.0,
    ) -> None:
        if not bucket.endswith("--x-s3"):
            raise ValueError(f"{bucket!r} is not a directory bucket name (NAME--ZONEID--x-s3)")
        self.store = store
        self.bucket = bucket
        self.region = region
        self.session_ttl = session_ttl
        self.stats: Counter[str] = Counter()
        self._keys = {
            k: s
            for k, s in (
                (store.access_key, store.secret_key),
                (store.second_access_key, store.second_secret_key),
                (store.readonly_access_key, store.readonly_secret_key),
            )
            if k
        }
        self._sessions: dict[str, _Session] = {}
        self._etags: dict[str, str] = {}  # the opaque ETag shown -> moto's
        self._refuse = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"DirectoryBucketFront(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, prefix: str = "results", **params: str) -> str:
        """A result-backend URL for the directory bucket behind this front (the store's keys)."""
        query = "&".join(f"{k}={v}" for k, v in {"region": self.region, **params}.items())
        s = self.store
        return f"s3result+http://{s.access_key}:{s.secret_key}@127.0.0.1:{self.port}/{self.bucket}/{prefix}?{query}"

    # -- what a test turns -----------------------------------------------------------------

    def refuse(self, times: int = 1) -> None:
        """Answer the next ``times`` object requests ``400 ExpiredToken``, as S3 does for a lost session."""
        with self._lock:
            self._refuse += times

    def expire_sessions(self) -> None:
        """End every session now: requests signed with one are refused (``ExpiredToken``)."""
        with self._lock:
            for token, session in list(self._sessions.items()):
                self._sessions[token] = _Session(
                    session.access_key, session.secret_key, 0.0, session.owner, session.read_only
                )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DirectoryBucketFront:
        front = self

        class Handler(_Handler):
            owner = front

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> DirectoryBucketFront:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- one request -----------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request: (status, headers, body)."""
        try:
            return self._handle(method, target, headers, body)
        except _Rejected as exc:
            with self._lock:
                self.stats[f"rejected {exc.code}"] += 1
            xml = f"<Error><Code>{exc.code}</Code><Message>{exc.message}</Message><RequestId>front</RequestId></Error>"
            return exc.status, [("Content-Type", "application/xml")], xml.encode()

    def _handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        lower = {k.lower(): v for k, v in headers}
        path, _, query = target.partition("?")
        host = lower.get("host", "")
        if host.startswith(self.bucket + "."):
            key_path = path
        elif path == f"/{self.bucket}" or path.startswith(f"/{self.bucket}/"):
            key_path = path[len(self.bucket) + 1 :] or "/"
        else:
            raise _Rejected(404, "NoSuchBucket", "The specified bucket does not exist")
        auth = _AUTH.match(lower.get("authorization", ""))
        if auth is None:
            raise _Rejected(403, "AccessDenied", "a directory bucket needs a SigV4 Authorization header")
        if auth["service"] != "s3express":
            raise _Rejected(403, "SignatureDoesNotMatch", f"signed for service {auth['service']!r}, not s3express")
        if auth["region"] != self.region:
            raise _Rejected(
                400,
                "AuthorizationHeaderMalformed",
                f"the region {auth['region']!r} is wrong; expecting {self.region!r}",
            )
        if sigv4.payload_hash(body) != lower.get("x-amz-content-sha256"):
            raise _Rejected(400, "XAmzContentSHA256Mismatch", "the x-amz-content-sha256 does not match the body")
        stamp = lower.get("x-amz-date", "")
        try:
            signed_at = time.mktime(time.strptime(stamp, "%Y%m%dT%H%M%SZ")) - time.timezone
        except ValueError:
            raise _Rejected(403, "AccessDenied", "no valid x-amz-date") from None
        if abs(signed_at - time.time()) > 900:
            raise _Rejected(403, "RequestTimeTooSkewed", "the request time is too far from the front's")
        if query == "session" and method == "GET" and key_path == "/":
            return self._create_session(auth, method, target, lower, body)
        if "x-amz-security-token" in lower:
            raise _Rejected(
                400, "InvalidRequest", "directory buckets take x-amz-s3session-token, not X-Amz-Security-Token"
            )
        token = lower.get("x-amz-s3session-token")
        if not token:
            raise _Rejected(403, "AccessDenied", "no x-amz-s3session-token: create a session first (GET /?session)")
        with self._lock:
            session = self._sessions.get(token)
            refused = self._refuse > 0
            if refused:
                self._refuse -= 1
                self.stats["refused"] += 1
        if session is None:
            raise _Rejected(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        if refused or session.expiry <= time.time():
            raise _Rejected(400, "ExpiredToken", "The provided token has expired.")
        if auth["key"] != session.access_key:
            raise _Rejected(403, "InvalidAccessKeyId", "the access key is not this session's")
        self._verify(auth, session.secret_key, method, target, lower, body, express=True)
        if session.read_only and method in _WRITES:
            raise _Rejected(403, "AccessDenied", "a ReadOnly session cannot write")
        with self._lock:
            self.stats["verified"] += 1
        return self._forward(session.owner, method, key_path, query, headers, body)

    def _create_session(
        self, auth: re.Match[str], method: str, target: str, lower: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if "x-amz-s3session-token" in lower:
            raise _Rejected(400, "InvalidRequest", "CreateSession is signed with the account's credentials")
        secret = self._keys.get(auth["key"])
        if secret is None:
            raise _Rejected(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
            )
        self._verify(auth, secret, method, target, lower, body, express=False)
        mode = lower.get("x-amz-create-session-mode", "ReadWrite")
        if mode not in ("ReadWrite", "ReadOnly"):
            raise _Rejected(400, "InvalidArgument", f"x-amz-create-session-mode {mode!r}")
        session = _Session(
            "ASIA" + secrets.token_hex(8).upper(),
            secrets.token_urlsafe(30),
            time.time() + self.session_ttl,
            auth["key"],
            mode == "ReadOnly" or auth["key"] == self.store.readonly_access_key,
        )
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._sessions[token] = session
            self.stats["sessions"] += 1
        millis = int(session.expiry % 1 * 1000)
        expiration = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(session.expiry)) + f".{millis:03d}Z"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<CreateSessionResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Credentials>'
            f"<SessionToken>{token}</SessionToken><SecretAccessKey>{session.secret_key}</SecretAccessKey>"
            f"<AccessKeyId>{session.access_key}</AccessKeyId><Expiration>{expiration}</Expiration>"
            "</Credentials></CreateSessionResult>"
        )
        return 200, [("Content-Type", "application/xml")], xml.encode()

    def _verify(
        self,
        auth: re.Match[str],
        secret: str,
        method: str,
        target: str,
        lower: dict[str, str],
        body: bytes,
        *,
        express: bool,
    ) -> None:
        """Recompute the signature, step by step, over the headers the request says it signed.

        The steps are sigv4's (canonical request, string to sign, signing key); that they equal
        botocore's, for plain and S3 Express requests, is held by tests/test_express.py with
        botocore as the independent oracle, so the kit itself needs no boto.
        """
        signed = auth["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed or (express and "x-amz-s3session-token" not in signed):
            raise _Rejected(403, "AccessDenied", f"SignedHeaders must include host and x-amz-date: {auth['signed']}")
        missing = [name for name in signed if name not in lower]
        if missing:
            raise _Rejected(403, "SignatureDoesNotMatch", f"signed headers not sent: {missing}")
        path, _, query = target.partition("?")
        block, names = sigv4.canonical_headers([(n, lower[n]) for n in signed])
        creq = sigv4.canonical_request(
            method=method,
            uri=path,
            query=sigv4.canonical_query(parse_qsl(query, keep_blank_values=True)),
            headers=block,
            signed_headers=names,
            payload_hash=lower.get("x-amz-content-sha256", sigv4.payload_hash(body)),
        )
        date_time = lower["x-amz-date"]
        scope = sigv4.credential_scope(date=date_time[:8], region=self.region, service="s3express")
        sts = sigv4.string_to_sign(amz_date=date_time, scope=scope, canonical_request=creq)
        key = sigv4.signing_key(secret_key=secret, date=date_time[:8], region=self.region, service="s3express")
        expected = sigv4.signature(key=key, string_to_sign=sts)
        if expected != auth["signature"] or auth["date"] != date_time[:8]:
            raise _Rejected(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )

    def _forward(
        self, owner: str, method: str, key_path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The same request to moto, signed with the account's key; the answer with opaque ETags."""
        store = self.store
        path = f"/{store.bucket}{key_path}"
        extra = []
        for name, value in headers:
            lname = name.lower()
            if lname in _HOP or lname in _AUTH_HEADERS:
                continue
            if lname in ("if-match", "if-none-match"):
                with self._lock:
                    self.stats[lname] += 1
                    value = self._etags.get(value, value)
            extra.append((lname, value))
        params = [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]
        signed = sigv4.sign_s3(
            method=method,
            host=f"{store.host}:{store.port}",
            path=path,
            query=params,
            headers=extra,
            body_sha256=sigv4.payload_hash(body),
            access_key=owner,
            secret_key=self._keys[owner],
            region="us-east-1",
            now=time.time(),
        )
        conn = http.client.HTTPConnection(store.host, store.port, timeout=60)
        try:
            conn.request(method, path + (f"?{query}" if query else ""), body=body, headers=dict(extra + signed))
            resp = conn.getresponse()
            data = resp.read()
            # Date and Server: the front's own (BaseHTTPRequestHandler sends them).
            dropped = (
                _HOP | {"date", "server"} if method != "HEAD" else (_HOP - {"content-length"}) | {"date", "server"}
            )
            answer = [(k, v) for k, v in resp.getheaders() if k.lower() not in dropped]
        finally:
            conn.close()
        with self._lock:
            self.stats["forwarded"] += 1
        out = []
        for name, value in answer:
            if name.lower() == "etag":
                value = self._opaque(value)
            out.append((name, value))
        return resp.status, out, data

    def _opaque(self, etag: str) -> str:
        """An ETag that is not the body's MD5 (as on directory buckets), remembered for If-Match."""
        shown = '"' + hashlib.sha256(b"s3express-etag " + etag.encode()).hexdigest()[:32] + '"'
        with self._lock:
            self._etags[shown] = etag
        return shown


class _Handler(BaseHTTPRequestHandler):
    owner: DirectoryBucketFront
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, data = self.owner.handle(self.command, self.path, list(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass
