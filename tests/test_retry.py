"""The retry policy as pure logic: classification, full jitter, and the quota."""

from __future__ import annotations

import pytest

from s3result.errors import (
    AccessDenied,
    Conflict,
    ConnectError,
    CorruptResponse,
    NotFound,
    NotImplementedByStore,
    PreconditionFailed,
    RequestTimeout,
    S3Error,
    ServerError,
)
from s3result.s3.retry import DEFAULT_RETRY, Backoff, RetryConfig, RetryQuota, is_permanent, is_retryable, retry_call


def test_defaults_are_the_sdk_standard_mode() -> None:
    assert DEFAULT_RETRY.max_attempts == 3 and DEFAULT_RETRY.quota_capacity == 500
    assert RetryConfig() == DEFAULT_RETRY and "max_attempts=3" in repr(DEFAULT_RETRY)


def test_full_jitter_bounds() -> None:
    cfg = RetryConfig(base_delay=0.1, max_delay=1.0)
    assert Backoff(cfg, rng=lambda: 1.0).delay(1) == pytest.approx(0.1)
    assert Backoff(cfg, rng=lambda: 1.0).delay(3) == pytest.approx(0.4)
    assert Backoff(cfg, rng=lambda: 1.0).delay(10) == pytest.approx(1.0)
    assert Backoff(cfg, rng=lambda: 0.0).delay(5) == 0.0
    assert Backoff(cfg).ceiling(3) == pytest.approx(0.4) and Backoff(cfg).ceiling(100) == 1.0
    slept: list[float] = []
    assert Backoff(cfg, rng=lambda: 0.5, sleep=slept.append).wait(2) == pytest.approx(0.1)
    assert slept == [pytest.approx(0.1)]


def test_jitter_neither_reads_nor_moves_the_shared_random_state() -> None:
    """The default jitter is the OS's: an application's ``random.seed`` does not make every worker's
    schedule the same, and a retry in another thread does not move the state that Hypothesis (and
    the application) watch. A ``random.Random`` of our own would be copied into every forked child."""
    import random

    cfg = RetryConfig(base_delay=1.0, max_delay=1.0)
    before = random.getstate()
    delays = [Backoff(cfg).delay(1) for _ in range(50)]
    assert random.getstate() == before
    random.seed(7)
    first = [Backoff(cfg).delay(1) for _ in range(5)]
    random.seed(7)
    assert [Backoff(cfg).delay(1) for _ in range(5)] != first
    assert all(0.0 <= d <= 1.0 for d in delays) and len(set(delays)) > 40


def test_quota_empties_and_refills() -> None:
    quota = RetryQuota(RetryConfig(quota_capacity=12, retry_cost=5, timeout_cost=10))
    assert quota.acquire(ServerError(status=503)) == 5
    assert quota.acquire(RequestTimeout("t")) is None  # 7 left, a timeout costs 10
    assert quota.acquire(ServerError(status=503)) == 5
    assert quota.acquire(ServerError(status=503)) is None
    quota.release(5)  # 7 left: a timeout still cannot be paid for, a retry can
    assert quota.acquire(RequestTimeout("t")) is None
    assert quota.acquire(ServerError(status=503)) == 5
    for _ in range(20):
        quota.release(None)  # refilled to the capacity, no more
    assert quota.acquire(RequestTimeout("t")) == 10 and quota.acquire(ServerError(status=503)) is None


@pytest.mark.parametrize(
    "exc,expected",
    [
        (ServerError(status=500, code="InternalError"), True),
        (ServerError(status=502), True),
        (ServerError(status=503, code="SlowDown"), True),
        (ServerError(status=504), True),
        (S3Error(status=429, code="TooManyRequests"), True),
        (S3Error(status=400, code="RequestTimeout"), True),
        (S3Error(status=400, code="InvalidArgument"), False),
        (S3Error(status=408), True),
        (S3Error(status=307, code="TemporaryRedirect"), False),
        (AccessDenied(status=403), False),
        (NotFound(status=404), False),
        (PreconditionFailed(status=412), False),
        (NotImplementedByStore(status=501), False),
        (ConnectError("refused"), True),
        (RequestTimeout("slow"), True),
        (CorruptResponse("md5"), True),
        (ValueError("x"), False),
    ],
)
def test_classification(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_timeouts_only_when_idempotent_and_conflict_only_on_request() -> None:
    assert is_retryable(RequestTimeout("t"), idempotent=False) is False
    assert is_retryable(ConnectError("c"), idempotent=False) is True
    assert is_retryable(Conflict(status=409)) is False
    assert is_retryable(Conflict(status=409), retry_conflict=True) is True


def test_408_is_transient_redirect_and_missing_bucket_are_permanent() -> None:
    """A 408 without an S3 code (a balancer's) heals; a redirect not followed and a missing
    bucket need a fix of the settings, so waits raise them at once."""
    assert S3Error(status=408).code == "HTTP408"
    assert is_permanent(S3Error(status=408)) is False
    assert is_permanent(S3Error(status=307)) is True
    assert S3Error(status=307).code == "TemporaryRedirect"
    assert is_permanent(NotFound(status=404, code="NoSuchBucket")) is True
    assert is_permanent(NotFound(status=404, code="NoSuchKey")) is False


def test_retry_call_retries_what_may_heal_within_its_attempts() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ServerError(status=503)
        return "done"

    cfg = RetryConfig(max_attempts=3, base_delay=0.1)
    backoff = Backoff(cfg, rng=lambda: 1.0, sleep=slept.append)
    assert retry_call(flaky, config=cfg, retryable=lambda e: True, backoff=backoff) == "done"
    assert slept == [pytest.approx(0.1), pytest.approx(0.2)]
    calls.clear()
    with pytest.raises(ServerError):
        retry_call(flaky, config=RetryConfig(max_attempts=2), retryable=lambda e: True, backoff=backoff)
    calls.clear()
    with pytest.raises(ServerError):
        retry_call(flaky, config=cfg, retryable=lambda e: False, backoff=backoff)
    assert len(calls) == 1
