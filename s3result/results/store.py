"""The result store: keys, reads, race-free writes, the conditional-write verdict, ETag memory.

``S3Backend`` builds one per backend instance and hands it to the waiter and the chord
engine; it knows the settings, where the process's client for them comes from (the backend
hands it ``clients.shared_client``), Celery's key scheme and decoder (all given in the
constructor), and nothing of waiting or chords.

Where the store honours conditional writes (probed once per store and bucket, the verdict kept
in the bucket for the next process, see ``precondition``), a state write is one
``PUT If-None-Match: *``; only when the key exists is it read, and replaced with ``PUT If-Match``
unless it already holds a SUCCESS. The ETag this process got back is remembered (``etags``),
so a task's later state goes straight to ``PUT If-Match``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import states
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from ..errors import AlreadyExists, Conflict, NotFound, PreconditionFailed, ResultTooLarge, S3Error, TransportError
from ..s3.client import S3Client
from ..s3.config import StoreId
from ..s3.process import PROCESS
from ..s3.request import PutMode
from ..s3.retry import is_permanent, is_retryable
from .cas import Attempt, compare_and_swap
from .etags import EtagMemory
from .precondition import Support, known, support_for
from .settings import ConditionalWrites, Settings

__all__ = ("ETAGS", "ResultStore", "as_error_of", "is_transient")

logger = get_logger(__name__)

# The ETag of each state this process wrote to each store, for the next state of the same task (see etags).
ETAGS = PROCESS.store_slot(
    "results.store.etags",
    EtagMemory,
    key=StoreId,
    fork="emptied",
    why="the ETags this process wrote: a child never acts on what its parent wrote",
)


def is_transient(exc: BaseException) -> bool:
    """A store failure that waiting longer can heal (``S3Backend.exception_safe_to_retry``).

    A missing bucket, 401/403, TLS failures and names that do not resolve say False, so
    neither a wait nor ``result_backend_always_retry`` spins on them.
    """
    if is_permanent(exc):
        return False
    return isinstance(exc, TransportError) or is_retryable(exc)


def as_error_of(exc: S3Error | TransportError, method: str, key: str) -> S3Error | TransportError:
    """The same failure, told about the request the caller made rather than the probe's own.

    A wrong secret fails the conditional-write probe first; the user asked to store a result,
    so the error names that write (same class, code and hint), not a probe key.
    """
    if isinstance(exc, S3Error):
        return exc.replace(key=key, method=method)
    text = str(exc).replace(repr(exc.key), repr(key)).replace(f"S3 {exc.method} ", f"S3 {method} ", 1)
    return type(exc)(text, method=method, key=key)


class ResultStore:
    """Result objects of one bucket and prefix: ``<prefix>/<Celery's key>``.

    ``task_key``: Celery's key of a task's result (``get_key_for_task``); ``decode``: Celery's
    decoder of a stored meta; ``content_type``: what a result is stored as; ``clients``: the
    process's client for a ``Settings`` (``clients.shared_client``: the store does not import
    the registry, so that it stays a layer above the client alone); ``cas_deadline``: how long
    a state write may keep losing to other writers.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        task_key: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        content_type: str,
        clients: Callable[[Settings], S3Client],
        cas_deadline: float = 120.0,
    ) -> None:
        self.settings = settings
        self._task_key = task_key
        self.decode = decode
        self.content_type = content_type
        self._clients = clients
        self.cas_deadline = cas_deadline

    @property
    def client(self) -> S3Client:
        """This process's client for these settings, shared by every backend instance (``clients``)."""
        return self._clients(self.settings)

    # -- keys and plain reads ----------------------------------------------------------------

    def key(self, key: bytes | str) -> str:
        """The object key of one of Celery's keys."""
        return self.settings.object_key(bytes_to_str(key))

    def task_key(self, task_id: Any) -> str:
        """The object key of a task's result."""
        return self.key(self._task_key(task_id))

    def get(self, key: bytes | str) -> bytes | None:
        """One GET; a missing key is None (no HEAD first)."""
        found = self.client.get_or_none(self.key(key))
        return None if found is None else found.body

    def mget(self, keys: list[bytes | str]) -> list[bytes | None]:
        """Concurrent GETs over the pool; None where a key is missing."""
        found = self.client.get_many([self.key(k) for k in keys])
        return [None if f is None else f.body for f in found]

    def set(self, key: bytes | str, value: bytes | str) -> None:
        """One PUT of the encoded value."""
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self.check_size(key, body)
        self.client.put(self.key(key), body, content_type=self.content_type)

    def delete(self, key: bytes | str) -> None:
        """DELETE, idempotent: a missing key is fine."""
        self.client.delete(self.key(key))

    def meta(self, task_id: Any) -> Any:
        """A task's meta, one GET (the retry budget's attempts); pending when there is none."""
        found = self.get(self._task_key(task_id))
        if not found:
            return {"status": states.PENDING, "result": None}
        return self.decode(found)

    def check_size(self, key: bytes | str, body: bytes) -> None:
        """Refuse a result over ``max_result_size`` before anything is sent (the store would take it)."""
        limit = self.settings.max_result_size
        if len(body) > limit:
            raise ResultTooLarge(
                f"result for {bytes_to_str(key)!r} is {len(body)} bytes, over max_result_size={limit}; "
                "return a reference to the data instead, or raise max_result_size"
            )

    # -- conditional writes ------------------------------------------------------------------

    @property
    def support(self) -> Support:
        """Whether this store's conditional writes can be trusted (probed once per process)."""
        return support_for(self.client, self.settings.conditional_writes, self.settings.prefix)

    def write_state(self, key: str, body: bytes, final: bool = False) -> str | None:
        """``PUT If-Match`` with the ETag this process wrote last, else create, else read then replace.

        ``final`` (a ready state) is never remembered: whatever comes after it must read it first.
        Returns the ETag now stored (None if unknown).
        """
        etags = ETAGS.get(self.settings.store_id)  # the same key in another bucket is another object
        etag = self._put_state(key, body, etags)
        if etag is None or final:
            etags.forget(key)
        else:
            etags.put(key, etag)
        return etag

    def _put_state(self, key: str, body: bytes, etags: EtagMemory) -> str | None:
        """Store ``body`` at ``key`` as the race-free rules say; the ETag now there, None if unknown."""
        client = self.client
        content_type = self.content_type
        known_etag = etags.get(key)
        if known_etag is not None:
            try:
                return client.put(key, body, mode=PutMode.update(known_etag), content_type=content_type)
            except (PreconditionFailed, Conflict, NotFound):
                pass  # written by someone else since, or forgotten: read what is there
        else:
            try:
                return client.put(key, body, mode=PutMode.CREATE, content_type=content_type)
            except AlreadyExists:
                pass

        def attempt(cas: Attempt) -> str | None:
            current = client.get_or_none(key)
            cas.read(None if current is None else current.etag)
            if current is None:  # forgotten in between: create again
                return client.put(key, body, mode=PutMode.CREATE, content_type=content_type)
            if current.body == body:
                return current.etag  # our own earlier attempt landed (its reply was lost), or the same state
            if self.decode(current.body).get("status") == states.SUCCESS:
                logger.debug("s3result: %s already holds SUCCESS; a later state is not stored", key)
                return None
            return client.put(key, body, mode=PutMode.update(current.etag), content_type=content_type)

        return compare_and_swap(key, attempt, deadline_s=self.cas_deadline, store_errors=False)

    def check(self, timeout: float = 5.0) -> BaseException | None:
        """The store's first answers, before any task is taken; the error, if any.

        With ``conditional_writes=probe`` it is the conditional-write verdict: the GET of the
        verdict stored in the bucket, confirmed by one conditional PUT (which a read-only key
        is refused), or the probe where there is none. Otherwise one GET of a key that need
        not exist.
        """
        deadline = time.monotonic() + timeout
        try:
            mode = self.settings.conditional_writes
            if mode is ConditionalWrites.PROBE and known(self.client) is None:
                support_for(self.client, mode, self.settings.prefix, deadline, confirm=True)
            else:
                self.client.get_or_none(self.task_key("s3result-start-check"), deadline=deadline, attempts=1)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            return exc
        return None
