"""The S3 semantics s3result relies on, as target-agnostic checks.

Each check takes a ``Ctx`` (a client on the target, a fresh key prefix, and helpers) and
returns an *observation*: a small value describing what the store did. ``EXPECTED`` holds what
Amazon S3 does; ``divergences.py`` holds what a given store is documented to do instead.
Checks go through s3result's own client (``send_raw`` where the exact status matters). They are
part of the installed package so ``s3result conformance URL`` runs them against any store; the
repository's ``conformance/`` pytest suite runs the same functions over its matrix of servers.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AlreadyExists, NotFound, PreconditionFailed, S3Error, S3ResultError
from ..s3.client import S3Client
from ..s3.integrity import CHECKSUM_HEADER, checksum
from ..s3.request import PutMode

__all__ = ["CHECKS", "Ctx", "EXPECTED", "check"]


@dataclass
class Ctx:
    """What a check gets: a client on the store, and a key prefix of its own."""

    client: S3Client
    prefix: str

    def key(self, name: str = "") -> str:
        return f"{self.prefix}/{name or uuid.uuid4().hex}"

    def client_with(self, **overrides: Any) -> S3Client:
        """Another client on the same store: other credentials, a skewed clock, another bucket.

        The credentials the main client signs with (from the URL or the environment) are made
        explicit first, so overriding one of the pair keeps the other.
        """
        from dataclasses import replace

        clock = overrides.pop("clock", time.time)
        creds = self.client.credentials.get()
        explicit = {"access_key": creds.access_key, "secret_key": creds.secret_key, "session_token": creds.token}
        changed = replace(self.client.config, **{**explicit, **overrides})
        return S3Client(changed, clock=clock)


def _code(resp: Any) -> str:
    import re

    found = re.search(rb"<Code>([^<]+)</Code>", resp.body)
    return found.group(1).decode() if found else ""


CHECKS: dict[str, Callable[[Ctx], Any]] = {}
EXPECTED: dict[str, Any] = {}


def check(expected: Any) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
    """Register a check with what Amazon S3 answers."""

    def register(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        CHECKS[fn.__name__] = fn
        EXPECTED[fn.__name__] = expected
        return fn

    return register


# -- round trips ----------------------------------------------------------------------------


@check("byte-exact")
def put_then_get(ctx: Ctx) -> str:
    body = bytes(range(256)) * 3
    key = ctx.key()
    ctx.client.put(key, body)
    return "byte-exact" if ctx.client.get(key).body == body else "changed"


@check("second")
def overwrite(ctx: Ctx) -> str:
    key = ctx.key()
    ctx.client.put(key, b"first")
    ctx.client.put(key, b"second")
    return ctx.client.get(key).body.decode()


@check(0)
def zero_byte_object(ctx: Ctx) -> int:
    key = ctx.key()
    ctx.client.put(key, b"")
    return len(ctx.client.get(key).body)


@check("byte-exact")
def one_mib_object(ctx: Ctx) -> str:
    body = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)
    key = ctx.key()
    ctx.client.put(key, body)
    return "byte-exact" if ctx.client.get(key).body == body else "changed"


@check("quoted md5")
def etag_is_quoted_md5(ctx: Ctx) -> str:
    key = ctx.key()
    etag = ctx.client.put(key, b"etag me")
    md5 = hashlib.md5(b"etag me").hexdigest()
    if etag == f'"{md5}"':
        return "quoted md5"
    return "unquoted md5" if etag == md5 else f"other: {etag}"


@check(4321)
def head_content_length(ctx: Ctx) -> int:
    key = ctx.key()
    ctx.client.put(key, b"x" * 4321)
    return ctx.client.head(key).size


# -- missing things -------------------------------------------------------------------------


@check((404, 0))
def head_missing_key(ctx: Ctx) -> tuple[int, int]:
    resp = ctx.client.send_raw("HEAD", ctx.key())
    return (resp.status, len(resp.body))


@check((404, "NoSuchKey"))
def get_missing_key(ctx: Ctx) -> tuple[int, str]:
    resp = ctx.client.send_raw("GET", ctx.key())
    return (resp.status, _code(resp))


@check(204)
def delete_missing_key(ctx: Ctx) -> int:
    return ctx.client.send_raw("DELETE", ctx.key()).status


@check((404, "NoSuchBucket"))
def missing_bucket(ctx: Ctx) -> tuple[int, str]:
    other = ctx.client_with(bucket=f"no-such-bucket-{uuid.uuid4().hex[:12]}")
    resp = other.send_raw("GET", ctx.key())
    return (resp.status, _code(resp))


# -- keys -----------------------------------------------------------------------------------


def _round_trip(ctx: Ctx, name: str) -> str:
    key = ctx.key(name)
    try:
        ctx.client.put(key, name.encode())
        got = ctx.client.get(key).body
    except S3Error as exc:
        return f"rejected: {exc.status} {exc.code}"
    return "ok" if got == name.encode() else "changed"


@check("ok")
def key_special_characters(ctx: Ctx) -> str:
    results = {c: _round_trip(ctx, f"chars {c}x") for c in [" ", "+", "~", "%", "=", "&", "?", "#"]}
    bad = {c: r for c, r in results.items() if r != "ok"}
    return "ok" if not bad else f"failed: {bad}"


@check("ok")
def key_unicode(ctx: Ctx) -> str:
    return _round_trip(ctx, "unicode-ሴ-é-😀-日本")


@check("ok")
def key_1024_bytes(ctx: Ctx) -> str:
    base = ctx.key("")
    return _round_trip(ctx, "k" * (1024 - len(base.encode())))


@check("ok")
def key_double_slash(ctx: Ctx) -> str:
    return _round_trip(ctx, "a//b")


@check("ok")
def key_leading_slash(ctx: Ctx) -> str:
    # The object key itself starts with '/': the request path holds '//'.
    key = f"/{ctx.prefix}/{uuid.uuid4().hex}"
    try:
        ctx.client.put(key, b"slash")
        return "ok" if ctx.client.get(key).body == b"slash" else "changed"
    except S3Error as exc:
        return f"rejected: {exc.status} {exc.code}"


@check("ok")
def key_dot_segments(ctx: Ctx) -> str:
    return _round_trip(ctx, "a/../b/./c")


# -- headers --------------------------------------------------------------------------------


@check("kept")
def user_metadata(ctx: Ctx) -> str:
    key = ctx.key()
    ctx.client.put(key, b"m", metadata={"task-state": "SUCCESS"})
    return "kept" if ctx.client.head(key).headers.get("x-amz-meta-task-state") == "SUCCESS" else "lost"


# The result checksum (s3result/integrity.py) is user metadata: it works only where the store
# keeps it byte for byte, returns it on GET (where it is checked) and HEAD, and replaces it
# with the object, never keeps a stale one.


@check("returned unchanged")
def checksum_on_get(ctx: Ctx) -> str:
    key = ctx.key()
    body = b'{"status": "SUCCESS", "result": 42}'
    ctx.client.put(key, body)
    resp = ctx.client.send_raw("GET", key)
    got = resp.headers.get(CHECKSUM_HEADER)
    if got is None:
        return "not returned"
    return "returned unchanged" if got == checksum(body) and resp.body == body else f"returned as {got!r}"


@check("returned unchanged")
def checksum_on_head(ctx: Ctx) -> str:
    key = ctx.key()
    ctx.client.put(key, b"h" * 100)
    got = ctx.client.head(key).headers.get(CHECKSUM_HEADER)
    return "returned unchanged" if got == checksum(b"h" * 100) else f"returned as {got!r}"


@check("replaced with the object")
def checksum_after_overwrite(ctx: Ctx) -> str:
    """A later state replaces the object and its metadata: the GET checks the new body's CRC."""
    key = ctx.key()
    ctx.client.put(key, b"STARTED")
    ctx.client.put(key, b"SUCCESS, a longer body")
    got = ctx.client.send_raw("GET", key).headers.get(CHECKSUM_HEADER)
    return "replaced with the object" if got == checksum(b"SUCCESS, a longer body") else f"stale: {got!r}"


@check("verified")
def checksum_verified_on_read(ctx: Ctx) -> str:
    """The client's own read: every size it may meet passes its checksum (none is a false alarm)."""
    for size in (0, 1, 1000, 300_000):
        key = ctx.key()
        body = bytes(i % 251 for i in range(size))
        ctx.client.put(key, body)
        if ctx.client.get(key).body != body:
            return f"wrong body at {size} bytes"
    return "verified"


@check("application/x-python-serialize")
def content_type(ctx: Ctx) -> str:
    key = ctx.key()
    ctx.client.put(key, b"c", content_type="application/x-python-serialize")
    return ctx.client.head(key).headers.get("content-type", "")


@check("accepted or rejected cleanly")
def sse_s3_header(ctx: Ctx) -> str:
    """Either is fine for s3result (sse= is opt-in); a store must not take it and misbehave."""
    key = ctx.key()
    resp = ctx.client.send_raw("PUT", key, body=b"e", headers=[("x-amz-server-side-encryption", "AES256")])
    if resp.status < 300:
        return "accepted or rejected cleanly" if ctx.client.get(key).body == b"e" else "accepted, body changed"
    return "accepted or rejected cleanly" if _code(resp) else f"rejected without an S3 error: {resp.status}"


# -- authentication -------------------------------------------------------------------------


@check((403, "SignatureDoesNotMatch"))
def wrong_secret(ctx: Ctx) -> tuple[int, str]:
    resp = ctx.client_with(secret_key="definitely-not-the-secret").send_raw("GET", ctx.key())
    return (resp.status, _code(resp))


@check((403, "InvalidAccessKeyId"))
def unknown_access_key(ctx: Ctx) -> tuple[int, str]:
    resp = ctx.client_with(access_key="AKIDUNKNOWN0000000000").send_raw("GET", ctx.key())
    return (resp.status, _code(resp))


@check("rejected: XAmzContentSHA256Mismatch or BadDigest")
def tampered_body(ctx: Ctx) -> str:
    signed_for = hashlib.sha256(b"what was signed").hexdigest()
    resp = ctx.client.send_raw("PUT", ctx.key(), body=b"what was sent!!", body_sha256=signed_for)
    if resp.status < 300:
        return "accepted"
    code = _code(resp)
    return (
        "rejected: XAmzContentSHA256Mismatch or BadDigest"
        if code in ("XAmzContentSHA256Mismatch", "BadDigest")
        else f"rejected: {code or resp.status}"
    )


@check((403, "RequestTimeTooSkewed"))
def clock_20_minutes_off(ctx: Ctx) -> tuple[int, str]:
    resp = ctx.client_with(clock=lambda: time.time() - 1200).send_raw("GET", ctx.key())
    return (resp.status, _code(resp))


# -- conditional writes ---------------------------------------------------------------------


@check(("412", "unchanged"))
def if_none_match_on_existing_key(ctx: Ctx) -> tuple[str, str]:
    key = ctx.key()
    ctx.client.put(key, b"original")
    try:
        ctx.client.put(key, b"replaced", mode=PutMode.CREATE)
        status = "200"
    except AlreadyExists as exc:
        status = str(exc.status)
    except S3Error as exc:
        status = f"{exc.status} {exc.code}"
    return (status, "unchanged" if ctx.client.get(key).body == b"original" else "overwritten")


@check(200)
def if_none_match_on_missing_key(ctx: Ctx) -> int:
    return ctx.client.send_raw("PUT", ctx.key(), body=b"new", headers=[("if-none-match", "*")]).status


@check(200)
def if_match_current_etag(ctx: Ctx) -> int:
    key = ctx.key()
    etag = ctx.client.put(key, b"v1")
    return ctx.client.send_raw("PUT", key, body=b"v2", headers=[("if-match", etag)]).status


@check((412, "unchanged"))
def if_match_stale_etag(ctx: Ctx) -> tuple[int, str]:
    key = ctx.key()
    stale = ctx.client.put(key, b"v1")
    ctx.client.put(key, b"v2")
    status = ctx.client.send_raw("PUT", key, body=b"v3", headers=[("if-match", stale)]).status
    return (status, "unchanged" if ctx.client.get(key).body == b"v2" else "overwritten")


@check("404 or 412")
def if_match_missing_key(ctx: Ctx) -> str:
    status = ctx.client.send_raw("PUT", ctx.key(), body=b"x", headers=[("if-match", '"' + "0" * 32 + '"')]).status
    return "404 or 412" if status in (404, 412) else str(status)


@check("one winner")
def concurrent_creates_one_winner(ctx: Ctx) -> str:
    key = ctx.key()
    barrier = threading.Barrier(8)
    wins: list[int] = []
    errors: list[int] = []

    def writer(i: int) -> None:
        barrier.wait()
        try:
            ctx.client.put(key, f"writer {i}".encode(), mode=PutMode.CREATE)
            wins.append(i)
        except (AlreadyExists, PreconditionFailed):
            pass
        except S3Error:
            errors.append(i)  # 501 from a store without conditional PUTs, say

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors and not wins:
        return "refused by every writer"
    return {0: "no winner", 1: "one winner"}.get(len(wins), "several winners")


@check("exactly 50")
def compare_and_swap_counter(ctx: Ctx) -> str:
    """5 writers x 10 increments by GET + PUT If-Match must count to exactly 50."""
    key = ctx.key()
    try:
        ctx.client.put(key, b"0", mode=PutMode.CREATE)
    except S3Error as exc:
        return f"refused: {exc.status} {exc.code}"

    def writer() -> None:
        for _ in range(10):
            for _attempt in range(100):  # a store that refuses every If-Match gives up here
                try:
                    cur = ctx.client.get(key)
                    ctx.client.put(key, str(int(cur.body) + 1).encode(), mode=PutMode.update(cur.etag))
                    break
                except PreconditionFailed:
                    time.sleep(0.001)
                except S3ResultError:  # a refusal; or, where writes race (nanio), a torn read
                    return

    threads = [threading.Thread(target=writer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = int(ctx.client.get(key).body)
    return "exactly 50" if total == 50 else ("no progress" if total == 0 else "lost updates")


# -- consistency ----------------------------------------------------------------------------


@check("consistent")
def read_after_write_and_delete(ctx: Ctx) -> str:
    errors: list[str] = []

    def worker(i: int) -> None:
        for j in range(10):
            key = ctx.key(f"raw-{i}-{j}")
            ctx.client.put(key, f"{i}:{j}".encode())
            if ctx.client.get(key).body != f"{i}:{j}".encode():
                errors.append(f"stale read of {key}")
            ctx.client.delete(key)
            try:
                ctx.client.get(key)
                errors.append(f"read after delete of {key}")
            except NotFound:
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return "consistent" if not errors else f"{len(errors)} anomalies, e.g. {errors[0]}"
