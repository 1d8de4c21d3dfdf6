"""The conditional-write verdict kept in the bucket, so a new process need not probe again.

The probe (``precondition``) costs 7-8 requests in sequence; where the store is 20 ms away
that is most of a new worker's way to its first result, and the store's answer has not
changed since the last worker asked. So the process that probes writes what it found to one
small object under the prefix, and the next process reads it with one GET (the GET the
worker's start check sends anyway).

The object is trusted only as far as it cannot do harm:

- it names the store it was taken on: the endpoint and bucket (also hashed into the key, so
  producers and workers reaching one bucket through two endpoints keep a verdict each), and
  the ``Server`` header the store answered the probe with (``AmazonS3``, ``MinIO``, a version
  for some). A verdict of another store, or of software that answers differently, is ignored;
- it is at most ``MAX_AGE`` old (the probing process's clock, corrected by the offset the
  client learnt from the store), and at most ``_FUTURE_SLACK`` ahead: then it is probed again;
- anything else (not JSON, a field missing, extra or of the wrong type, another format
  version, a checksum that does not match) means "probe again", never an error. A verdict
  says nothing a writer of the prefix could abuse: whoever can write there can already write
  results;
- the worker's start check confirms it with a second request, ``PUT If-None-Match: *`` of the
  same bytes on the same key: a store that still honours it refuses (412), which also shows
  the key may write (a read-only key is refused with 403 first, and stops the worker). A store
  that wrote it has stopped honouring ``If-None-Match``: the verdict is dropped and probed again.

Two processes that probe at once both write the same verdict (a plain PUT, the last one stays).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, BodyTooLarge, CorruptResponse, NotImplementedByStore, S3ResultError
from ..s3.request import PutMode

if TYPE_CHECKING:
    from ..s3.api import ObjectStore

__all__ = ["FORMAT", "MAX_AGE", "StoredVerdict", "confirm", "decode", "encode", "read", "verdict_key", "write"]

logger = logging.getLogger("s3result.results.precondition")  # the probe's own logger

#: Seconds a stored verdict is trusted by a process that starts: one probe an hour per store,
#: bucket and prefix, and a store replaced behind the same endpoint by software that answers
#: with the same ``Server`` header goes unnoticed by new processes for at most this long.
MAX_AGE = 3600.0
#: A verdict dated this far in the future (a prober's clock ahead) is not trusted either.
_FUTURE_SLACK = 300.0
#: The format, and with it what the probe checks: a new probe makes older verdicts stale.
FORMAT = 1
_FIELDS = frozenset({"s3result_verdict", "endpoint", "bucket", "server", "ok", "reason", "probed_at"})
_MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A verdict read from the bucket, and the bytes it was read as (for ``confirm``)."""

    ok: bool
    reason: str
    age: float
    body: bytes


def verdict_key(client: ObjectStore, prefix: str) -> str:
    """``<prefix>/s3result-probe/verdict-<16 hex>``: one per endpoint and bucket, under the prefix.

    Under the probe's own folder, so the lifecycle rule on the prefix covers it and one
    permission (``s3result-probe/*``) serves both.
    """
    s = client.config
    digest = hashlib.sha256(str(s.store_id).encode()).hexdigest()[:16]  # the spelling kept in buckets
    name = f"s3result-probe/verdict-{digest}"
    return f"{prefix}/{name}" if prefix else name


def _now(client: ObjectStore) -> float:
    return time.time() + client.clock_offset


def encode(client: ObjectStore, ok: bool, reason: str, server: str | None) -> bytes:
    """The object's body; ``server`` None when the probe read nothing back (so never learnt it)."""
    s = client.config
    return json.dumps(
        {
            "s3result_verdict": FORMAT,
            "endpoint": s.base_url,
            "bucket": s.bucket,
            "server": server,
            "ok": ok,
            "reason": reason[:_MAX_REASON],
            "probed_at": round(_now(client), 3),
        },
        sort_keys=True,
    ).encode()


def decode(client: ObjectStore, body: bytes, server: str) -> StoredVerdict | str:
    """The verdict in ``body`` if this store may trust it now, else why not (for the log).

    ``server`` is the ``Server`` header of the answer that carried ``body``.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return "not a verdict"
    if not isinstance(data, dict) or set(data) != _FIELDS or type(data["s3result_verdict"]) is not int:
        return "not a verdict"
    ok, reason, probed_at, stored_server = data["ok"], data["reason"], data["probed_at"], data["server"]
    if (
        type(ok) is not bool
        or not isinstance(reason, str)
        or len(reason) > _MAX_REASON
        or not reason.isprintable()
        or type(probed_at) not in (int, float)
        or not math.isfinite(probed_at)
        or not (stored_server is None or isinstance(stored_server, str))
    ):
        return "not a verdict"
    if data["s3result_verdict"] != FORMAT:
        return f"format {data['s3result_verdict']}, not {FORMAT}"
    store = client.config.store_id
    if data["endpoint"] != store.endpoint or data["bucket"] != store.bucket:
        return "taken on another endpoint or bucket"
    # A working store's verdict always read the Server header back; a failing one's may not have.
    if stored_server != server and (ok or stored_server is not None):
        return f"taken on a store that answered as {stored_server!r}, this one answers as {server!r}"
    age = _now(client) - probed_at
    if age > MAX_AGE:
        return f"{age:.0f}s old, older than {MAX_AGE:.0f}s"
    if age < -_FUTURE_SLACK:
        return f"dated {-age:.0f}s in the future"
    return StoredVerdict(ok, reason, max(age, 0.0), body)


def read(client: ObjectStore, key: str, deadline: float | None) -> StoredVerdict | None:
    """One GET; the verdict if it may be trusted, None to probe again.

    A store error (missing bucket, 403, the store down) is raised: the probe would meet it too,
    and the start check reports it. A body that is not a readable verdict is only "probe again".
    """
    try:
        found = client.get_or_none(key, deadline=deadline)
    except (CorruptResponse, BodyTooLarge) as exc:  # garbled or oversized: ours overwrites it
        logger.info("s3result: the stored conditional-write verdict %r is unreadable (%s); probing again", key, exc)
        return None
    if found is None:
        return None
    decoded = decode(client, found.body, found.server)
    if isinstance(decoded, str):
        logger.info("s3result: not using the stored conditional-write verdict %r (%s); probing again", key, decoded)
        return None
    return decoded


def write(client: ObjectStore, key: str, body: bytes, deadline: float | None) -> None:
    """Store a verdict just probed; a failure is logged, never raised (the next process probes)."""
    try:
        client.put(key, body, content_type="application/json", deadline=deadline)
    except S3ResultError as exc:
        logger.info("s3result: could not store the conditional-write verdict at %r (%s)", key, exc)


def confirm(client: ObjectStore, key: str, stored: StoredVerdict, deadline: float | None) -> bool:
    """The start check's second request: False when the verdict must be probed again.

    ``PUT If-None-Match: *`` of the bytes just read, on the key just read: refused with 412
    where the store still honours it. A 403 (a key that may not write) is raised.
    """
    try:
        client.put(key, stored.body, mode=PutMode.CREATE, content_type="application/json", deadline=deadline)
    except AlreadyExists:
        return True
    except NotImplementedByStore:  # answers 501 now: only a verdict that says "unusable" still holds
        return not stored.ok
    if stored.ok:  # written over (or the object expired in between): probe again to know which
        logger.warning(
            "s3result: the store accepted PUT If-None-Match: * on the existing verdict %r; probing its "
            "conditional writes again",
            key,
        )
    return not stored.ok
