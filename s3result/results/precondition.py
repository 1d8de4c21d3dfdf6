"""Conditional writes: probing whether a store really honours them, once per store and bucket.

Never trust a store's conditional writes without probing: some ignore ``If-None-Match`` and
overwrite (nanio, s3rver), Swift's s3api answers 501, and Ceph RGW 16.2 compares ``If-Match``
without the quotes S3 puts around ETags, so a correct ``If-Match`` fails. The probe writes a
dedicated key under the prefix, checks the three behaviours s3result relies on, and deletes it.
A transport failure during the probe is raised, never taken as an answer, so two processes
talking to the same store always reach the same verdict. The verdict is kept in the bucket
(``verdict``), so a process that starts after it reads it with one GET instead of probing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, NotImplementedByStore, PreconditionFailed, S3Error, S3ResultError
from ..s3.config import StoreId
from ..s3.process import PROCESS
from ..s3.request import PutMode
from . import verdict
from .settings import ConditionalWrites

if TYPE_CHECKING:
    from ..s3.api import ObjectStore
    from ..s3.replies import GetResult

__all__ = ["PROBE_PREFIX", "Support", "known", "probe", "support_for"]

logger = logging.getLogger(__name__)

PROBE_PREFIX = "s3result-probe"


@dataclass(frozen=True, slots=True)
class Support:
    """Whether conditional writes can be used, and why not when they cannot."""

    ok: bool
    reason: str
    forced: bool = False


@dataclass(slots=True)
class _Verdict:
    """What this process knows of one store's conditional writes."""

    #: The verdict, once taken: every backend instance of every thread asks once.
    support: Support | None = None
    #: The last probe that failed: when it ended, and its error.
    failed: tuple[float, S3ResultError] | None = None


_VERDICTS = PROCESS.store_slot(
    "results.precondition.verdicts",
    _Verdict,
    key=StoreId,
    fork="kept",
    why="the store's conditional-write verdict and a failed probe's backoff: still true of the same store",
)
_PROBE_LOCK = PROCESS.store_slot(
    "results.precondition.probe-lock",
    threading.Lock,
    key=StoreId,
    fork="renewed",
    why="one probe at a time per store: a store that never answers holds back no other store's first write",
)


@dataclass(slots=True)
class _Run:
    """One probe: its key, whether it may have made it, and what the store says it is."""

    key: str
    deadline: float | None
    #: The key may exist: its first PUT was answered, or not at all (a reply lost).
    may_exist: bool = False
    #: The ``Server`` header of the probe's reads, for the stored verdict; None before any.
    server: str | None = None

    def get(self, client: ObjectStore) -> GetResult | None:
        found = client.get_or_none(self.key, deadline=self.deadline)
        if found is not None:
            self.server = found.server
        return found


def probe(client: ObjectStore, prefix: str, deadline: float | None = None) -> Support:
    """Run the three checks on a fresh key under ``prefix`` and delete it afterwards.

    ``deadline`` (``time.monotonic()``) bounds every request: the worker's start check takes
    the verdict within its own timeout, not three read timeouts per request.
    """
    return _probe_run(client, prefix, deadline)[0]


def _probe_run(client: ObjectStore, prefix: str, deadline: float | None) -> tuple[Support, _Run]:
    run = _Run(f"{prefix}/{PROBE_PREFIX}/{uuid.uuid4()}" if prefix else f"{PROBE_PREFIX}/{uuid.uuid4()}", deadline)
    try:
        verdict = _probe(client, run)
    except NotImplementedByStore:
        # Swift s3api: https://docs.openstack.org/swift/latest/s3_compat.html
        verdict = Support(False, "the store answers 501 Not Implemented to conditional PUTs (Swift s3api)")
    except BaseException as exc:
        # A first PUT the store refused (a read-only key's 403) made no key: nothing to delete.
        if run.may_exist or not isinstance(exc, S3Error):
            _clean_up(client, run)  # never in place of the error that stopped the probe
        raise
    if run.may_exist:
        _clean_up(client, run)
    return verdict, run


def _clean_up(client: ObjectStore, run: _Run) -> None:
    """Delete the probe key; a failure is logged, never raised (a lifecycle rule on the prefix
    expires a key left behind, and the error that matters is the probe's own)."""
    try:
        client.delete(run.key, deadline=run.deadline)
    except S3ResultError as exc:
        logger.warning(
            "s3result: could not delete the probe key %r (%s); a lifecycle rule on the prefix expires it", run.key, exc
        )


def _probe(client: ObjectStore, run: _Run) -> Support:
    """The three checks; a 501 at any step is handled once, in ``probe``."""
    key, deadline = run.key, run.deadline
    try:
        first = client.put(key, b"probe-1", mode=PutMode.CREATE, deadline=deadline)
    except AlreadyExists:
        run.may_exist = True
        landed = _landed(client, run, b"probe-1")  # a retry after a lost reply finds our own write
        if landed is None:
            return Support(False, "If-None-Match: * refused to create a key that did not exist")
        first = landed
    run.may_exist = True
    try:
        client.put(key, b"probe-2", mode=PutMode.CREATE, deadline=deadline)
    except AlreadyExists:
        pass
    else:
        return Support(False, "the store ignores If-None-Match: * and overwrote an existing key (nanio, s3rver)")
    found = run.get(client)
    if found is None or found.body != b"probe-1":
        return Support(False, "a refused If-None-Match write still changed the object")
    try:
        second = client.put(key, b"probe-3", mode=PutMode.update(first), deadline=deadline)
    except PreconditionFailed:
        landed = _landed(client, run, b"probe-3")
        if landed is not None:
            return _probe_stale(client, run, first, landed)
        try:
            client.put(key, b"probe-3", mode=PutMode.update(first.strip('"')), deadline=deadline)
        except S3Error:
            return Support(False, "If-Match with the current ETag was refused")
        # Ceph RGW rejects a quoted ETag in If-Match: https://github.com/block/buzz/issues/3002
        return Support(False, "the store compares If-Match without the ETag's quotes (Ceph RGW 16.2 bug)")
    return _probe_stale(client, run, first, second)


def _probe_stale(client: ObjectStore, run: _Run, first: str, second: str) -> Support:
    """The last check: a stale ETag in If-Match must be refused, and change nothing."""
    try:
        client.put(run.key, b"probe-4", mode=PutMode.update(first), deadline=run.deadline)
    except PreconditionFailed:
        pass
    else:
        return Support(False, "the store ignores If-Match and overwrote a newer version (stale ETag accepted)")
    found = run.get(client)
    if found is None or found.etag != second:
        return Support(False, "a refused If-Match write still changed the object")
    return Support(True, "If-None-Match and If-Match honoured")


def _landed(client: ObjectStore, run: _Run, body: bytes) -> str | None:
    """The ETag when the key holds ``body``: our write landed and only its reply was lost."""
    found = run.get(client)
    return found.etag if found is not None and found.body == body else None


def known(client: ObjectStore) -> Support | None:
    """The verdict already taken for this client's store and bucket, or None; sends nothing."""
    return _VERDICTS.get(client.config.store_id).support


def support_for(
    client: ObjectStore,
    mode: ConditionalWrites,
    prefix: str,
    deadline: float | None = None,
    *,
    confirm: bool = False,
) -> Support:
    """The verdict for this store and bucket: forced by ``mode``, else stored or probed, then cached.

    A verdict stored in the bucket by an earlier process (``verdict``) costs one GET; without
    one that may be trusted, the store is probed and the verdict stored for the next process.
    ``confirm`` (the worker's start check) checks a stored verdict with one conditional PUT,
    which also shows the credentials may write. ``deadline`` bounds every request sent here.
    """
    if mode is ConditionalWrites.ETAG:
        return Support(True, "forced on by conditional_writes=etag", forced=True)
    if mode is ConditionalWrites.DISABLED:
        return Support(False, "forced off by conditional_writes=disabled", forced=True)
    # Not keyed by process: the verdict is a property of the store. A prefork worker takes it
    # once, before forking (the start check), and its children inherit it; a child made for
    # each task (worker_max_tasks_per_child=1) then costs no request for it.
    taken = _VERDICTS.get(client.config.store_id)
    found = taken.support
    if found is not None:
        return found
    asked = time.monotonic()
    with _PROBE_LOCK.get(client.config.store_id):
        found = taken.support
        if found is None:
            failed = taken.failed
            if failed is not None and failed[0] >= asked:
                # A probe that ended while this caller waited for the lock failed: its error, not a
                # probe more each in turn (a pool of 20 behind a silent store waited 20 timeouts).
                raise failed[1].with_traceback(None)
            try:
                found, how = _take(client, prefix, deadline, confirm)
            except S3ResultError as exc:  # not a time limit or an interrupt of the caller that probed
                taken.failed = (time.monotonic(), exc)
                raise
            taken.failed = None
            taken.support = found
            _log(client, found, how)
    return found


def _take(client: ObjectStore, prefix: str, deadline: float | None, confirm: bool) -> tuple[Support, str]:
    """The stored verdict if it may be trusted, else a probe whose verdict is stored; and which."""
    key = verdict.verdict_key(client, prefix)
    stored = verdict.read(client, key, deadline)
    if stored is not None and (not confirm or verdict.confirm(client, key, stored, deadline)):
        return Support(stored.ok, stored.reason), f"stored in the bucket by a probe {stored.age:.0f}s ago"
    found, run = _probe_run(client, prefix, deadline)
    verdict.write(client, key, verdict.encode(client, found.ok, found.reason, run.server), deadline)
    return found, "probed"


def _log(client: ObjectStore, found: Support, how: str) -> None:
    if found.ok:
        logger.info(
            "s3result: conditional writes work on bucket %r (%s): race-free writes, native chords",
            client.config.bucket,
            how,
        )
    else:
        logger.warning(
            "s3result: conditional writes unusable on bucket %r (%s; %s); falling back to read-then-write "
            "and chord_unlock",
            client.config.bucket,
            found.reason,
            how,
        )
