"""The retry policy: which failures are transient, how long to wait, and when to stop.

Modelled on the AWS SDKs' *standard* mode: a few attempts, full-jitter exponential backoff
(``random(0, 1) * min(base * 2**n, cap)``) and a retry quota, a token bucket that empties
while the store keeps failing so that a dead store is not hit with multiplied load.
https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html

One policy for every loop that waits and tries again: the client's pipeline, CreateSession,
credential fetches, the worker's start check. Each has its own ``RetryConfig`` (its limits);
the code that waits is this module's (``Backoff``, ``retry_call``), never a loop's own sleep.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import (
    NOT_S3,
    BodyTooLarge,
    ChecksumMismatch,
    Conflict,
    ConnectError,
    CorruptResponse,
    EndpointError,
    InvalidKey,
    NotFound,
    RequestTimeout,
    S3Error,
    ServerError,
)
from .process import renew_locks_after_fork

__all__ = [
    "Backoff",
    "DEFAULT_RETRY",
    "RetryConfig",
    "RetryQuota",
    "is_permanent",
    "is_retryable",
    "retry_call",
    "sleep",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Codes that S3 and compatible stores use for "slow down, try later", whatever the status.
_THROTTLING = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
    }
)
# 408: a load balancer or proxy timed out waiting for the request (S3 itself says 400
# RequestTimeout, listed above); the request was not processed, so another try may succeed.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """How many attempts, and the backoff bounds.

    Three attempts and a 20 s cap are the SDK standard-mode defaults: enough to ride out a
    throttling burst or a failover without holding a worker for long. The 50 ms base keeps
    the first retry quick for a result backend, where latency is user-visible.
    """

    max_attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 20.0
    quota_capacity: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10


DEFAULT_RETRY = RetryConfig()


#: The jitter's source: the OS's entropy, stateless. Not the module-level ``random`` state, which
#: the application shares (a seeded ``random`` would give every worker the same schedule) and which
#: Hypothesis watches; and not a ``random.Random`` of our own, which a fork would copy into every
#: prefork child, so that children retrying together would wait the same "random" pauses.
_JITTER = random.SystemRandom()


def sleep(seconds: float) -> None:
    """The project's one sleep: ``time.sleep`` looked up at each call, not bound at import.

    Every loop that waits is injected with this (or a test's fake): gevent's monkey-patching,
    which may come after s3result is imported, still turns the wait into a greenlet switch.
    """
    time.sleep(seconds)


class Backoff:
    """Full jitter: ``random(0,1) * min(base * 2**attempt, cap)``; RNG and sleep injectable."""

    def __init__(
        self,
        config: RetryConfig = DEFAULT_RETRY,
        *,
        rng: Callable[[], float] = _JITTER.random,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._rng = rng
        self._sleep = sleep

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt``: ``min(base * 2**(attempt-1), cap)``.

        Without jitter: for a schedule that is not a sleep (the start check's next try).
        """
        return float(min(self._config.base_delay * (2 ** (min(attempt, 64) - 1)), self._config.max_delay))

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        return float(self._rng() * self.ceiling(attempt))

    def wait(self, attempt: int) -> float:
        """Sleep for ``delay(attempt)`` and return it (a reconnect loop's pause, notify's listener)."""
        pause = self.delay(attempt)
        self.sleep(pause)
        return pause

    def sleep(self, pause: float) -> None:
        """Sleep for a delay computed earlier (to check it against a deadline first)."""
        if pause > 0:
            self._sleep(pause)


class RetryQuota:
    """The SDK token bucket: retries spend tokens, successes refund one; empty means no retry."""

    def __init__(self, config: RetryConfig = DEFAULT_RETRY) -> None:
        self._config = config
        self._tokens = config.quota_capacity
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")

    def acquire(self, exc: BaseException) -> int | None:
        """Spend the cost of retrying ``exc``; None when the bucket cannot pay for it."""
        cost = self._config.timeout_cost if isinstance(exc, RequestTimeout) else self._config.retry_cost
        with self._lock:
            if self._tokens < cost:
                return None
            self._tokens -= cost
            return cost

    def release(self, cost: int | None) -> None:
        """Refund after a success: the retry's cost, or one token for a first-try success."""
        with self._lock:
            self._tokens = min(self._config.quota_capacity, self._tokens + (cost or 1))


def is_retryable(exc: BaseException, *, idempotent: bool = True, retry_conflict: bool = False) -> bool:
    """Whether one more attempt may succeed where this one failed.

    A connect failure is always retryable because nothing was sent. A timeout or a reset
    after sending is retryable only for idempotent requests (every S3 verb we send is, and
    conditional PUTs resolve the ambiguity themselves). A 409 is retried only on request: for
    a conditional write it means "a concurrent writer was busy", for others it is final.
    """
    if isinstance(exc, EndpointError):
        return False
    if isinstance(exc, ConnectError):
        return True
    if isinstance(exc, (RequestTimeout, CorruptResponse)):
        return idempotent
    if isinstance(exc, Conflict):
        return retry_conflict
    if isinstance(exc, S3Error):
        if isinstance(exc, ServerError) and exc.status != 501:
            return True
        return exc.status in _TRANSIENT_STATUS or exc.code in _THROTTLING
    return False


def is_permanent(exc: BaseException) -> bool:
    """Whether waiting longer can never turn this failure into a result.

    Waiting loops (``wait_for``, joins, ``result_backend_always_retry``) retry what can heal:
    refused or reset connections, timeouts, 5xx and throttling. Everything the store or the
    network will answer the same way next time is permanent and raised at once: a missing
    bucket (404 ``NoSuchBucket``, never "pending"), 401/403 and signature errors, any other
    4xx, a host name that does not resolve, a TLS handshake that cannot succeed, a result over
    ``max_result_size``, a key no store accepts, and a 307 redirect the client did not follow
    (to another host: the endpoint or region setting needs fixing).

    A 404 page that is not S3 XML (``NotS3``: a web server, a load balancer or a wrong path
    prefix on the endpoint) is permanent too: it is no "pending" result, and never will be.

    ``NoSuchBucket`` is permanent on purpose, even though a few stores answer it for a moment
    right after the bucket was created (eventual consistency): in a wait it is almost always a
    wrong bucket name or a missing bucket, and retrying until the caller's timeout would hide
    that behind a TimeoutError. Create the bucket before starting workers and producers.
    """
    if isinstance(exc, (EndpointError, BodyTooLarge, InvalidKey, ChecksumMismatch)):
        # ChecksumMismatch: the client already read the key again and got a wrong body twice.
        return True
    if isinstance(exc, NotFound):
        return exc.code in ("NoSuchBucket", NOT_S3)
    if isinstance(exc, S3Error):
        return not is_retryable(exc, retry_conflict=True)
    return False


def retry_call(
    call: Callable[[], T],
    *,
    config: RetryConfig,
    retryable: Callable[[Exception], bool],
    backoff: Backoff | None = None,
    what: str = "request",
) -> T:
    """``call()`` until it returns, retrying what ``retryable`` says may heal, ``config.max_attempts`` in all.

    For the loops beside the client's pipeline (CreateSession, credential fetches): the same
    attempts and backoff, each with its own limits. The last failure is raised as it came.
    """
    waits = backoff or Backoff(config)
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if attempt >= config.max_attempts or not retryable(exc):
                raise
            pause = waits.delay(attempt)
            logger.info("s3result: %s failed (%s); trying again in %.3fs", what, exc, pause)
            waits.sleep(pause)
