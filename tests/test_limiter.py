"""The pacer as pure logic: an injected clock and sleep, no network.

Integration: tests/integration/test_throttling.py (10,000 stores through a throttling proxy in
front of moto, throttle_wait, deadlines, lost replies); e2e: tests/e2e/test_throttling.py (real
prefork workers); benchmark: benchmarks/throttle.py.
"""

from __future__ import annotations

import math
import os
import threading
import time

import httpx
import pytest

from s3result.errors import RequestTimeout, S3Error, ServerError, Throttled
from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.config import StoreId
from s3result.s3.limiter import Pacer, ThrottledRequest, limiter_for
from s3result.s3.retry import RetryConfig
from s3result.s3.throttling import is_throttling, retry_after
from s3result.s3.transport import HttpxTransport


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _served(pacer: Pacer, clock: Clock, rate: float, seconds: float) -> None:
    """The store served ``rate`` requests/s for ``seconds`` (the clock moves on)."""
    for _ in range(int(rate * seconds)):
        clock.now += 1 / rate
        pacer.succeeded()


def _pacer() -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer("writes", clock=clock, sleep=clock.sleep), clock


def test_off_until_the_first_throttling_answer() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 500, 1.0)
    assert not pacer.active and pacer.rate() == math.inf
    pacer.throttled(0.0)
    assert pacer.active


def test_the_first_cut_is_just_under_the_success_rate_measured() -> None:
    """Not a blind x0.7: 0.95 of what the store served over the last half second."""
    pacer, clock = _pacer()
    _served(pacer, clock, 150, 2.0)
    pacer.throttled(0.0)
    assert pacer.rate() == pytest.approx(0.95 * 150, rel=0.03)


def test_a_burst_of_slowdowns_sent_before_the_cut_is_one_cut() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 150, 1.0)
    for _ in range(16):
        pacer.throttled(0.0)  # all sent while the pacer was off
        clock.now += 0.001
    assert (pacer.throttles, pacer.cuts) == (16, 1)
    sent = pacer.reserve(math.inf)
    assert sent is not None
    clock.now += 0.01
    pacer.throttled(sent)  # sent after the cut: the cut was not enough
    assert pacer.cuts == 2


def test_turns_are_spaced_at_the_rate_and_sleep_outside_the_lock() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 100, 1.0)
    pacer.throttled(0.0)
    rate = pacer.rate()
    turns = [pacer.reserve(math.inf) for _ in range(10)]
    assert all(t is not None for t in turns)
    gaps = [b - a for a, b in zip(turns, turns[1:], strict=False)]  # type: ignore[operator]
    assert all(g == pytest.approx(1 / rate, rel=0.01) for g in gaps)

    def sleep(seconds: float) -> None:
        assert not pacer._lock.locked()  # nobody waits behind a sleeper
        clock.sleep(seconds)

    pacer._sleep = sleep
    pacer.wait_until(turns[-1])  # type: ignore[arg-type]
    assert clock.slept


def test_a_turn_past_the_limit_is_refused_and_not_reserved() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 10, 2.0)
    pacer.throttled(0.0)
    first = pacer.reserve(math.inf)
    assert first is not None
    assert pacer.reserve(clock.now) is None  # the next turn is ~0.1 s away
    assert pacer.reserve(math.inf) == pytest.approx(first + 1 / pacer.rate(), rel=0.05)


def test_retry_after_holds_every_new_turn() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 100, 1.0)
    pacer.throttled(0.0, wait=2.0)
    turn = pacer.reserve(math.inf)
    assert turn is not None and turn >= clock.now + 2.0


def test_the_rate_climbs_back_slowly_then_faster() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 100, 1.0)
    pacer.throttled(0.0)
    start = pacer.rate()
    rates = []
    for _ in range(6):
        # Keep the pacer busy (a request waits at every tick) while the clock moves on a second.
        for _ in range(10):
            clock.now += 0.1
            pacer._next = clock.now + 1.0
            pacer.reserve(math.inf)
        rates.append(pacer.rate())
    assert start < rates[0] < rates[1]  # back towards what the store served
    assert rates[1] < pacer._w * 1.02  # near the rate the store served: a few % per second
    assert rates[5] > pacer._w * 1.1  # past it, faster: a store that grew is found again


def test_the_climb_stops_while_no_request_waits() -> None:
    """A quiet process does not bank a rate that a later burst would overshoot with."""
    pacer, clock = _pacer()
    _served(pacer, clock, 100, 1.0)
    pacer.throttled(0.0)
    before = pacer.rate()
    for _ in range(50):  # 5 s of one request per 0.1 s: never waits
        clock.now += 0.1
        pacer.reserve(math.inf)
    assert pacer.rate() == pytest.approx(before, rel=0.01)


def test_off_again_after_a_minute_without_throttling() -> None:
    pacer, clock = _pacer()
    _served(pacer, clock, 100, 1.0)
    pacer.throttled(0.0)
    clock.now += 61
    pacer.reserve(math.inf)
    assert not pacer.active


def test_which_answers_are_throttling() -> None:
    assert is_throttling("PUT", 503, "SlowDown", {})
    assert is_throttling("GET", 503, "SlowDownRead", {})  # MinIO
    assert is_throttling("PUT", 429, "TooManyRequests", {})
    assert is_throttling("PUT", 400, "RequestLimitExceeded", {})
    assert is_throttling("PUT", 503, "ServiceUnavailable", {"retry-after": "1"})
    assert is_throttling("HEAD", 503, "ServiceUnavailable", {})  # a HEAD has no body to say SlowDown
    assert not is_throttling("PUT", 503, "ServiceUnavailable", {})  # the store failing: retried, not waited out
    assert not is_throttling("PUT", 500, "InternalError", {})


def test_retry_after_in_seconds_or_a_date_capped() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "3600"}) == 60.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3.0 < (retry_after({"retry-after": when}) or 0) <= 5.0


def _slowdown(key: str = "k") -> S3Error:
    return ServerError(status=503, code="SlowDown", message="Please reduce your request rate.", method="PUT", key=key)


def test_a_store_that_throttles_forever_ends_in_throttled_naming_the_setting() -> None:
    pacer, clock = _pacer()
    request = ThrottledRequest(pacer, 30.0, "PUT", "k")
    with pytest.raises(Throttled) as exc:
        while True:
            sent = request.turn(None)
            clock.now += 0.01
            request.answered(_slowdown(), sent, None)
    message = str(exc.value)
    assert "throttling" in message and "throttle_wait=30" in message
    assert "raise throttle_wait" in message and "partition" in message
    assert 25.0 <= clock.now - 1000.0 <= 30.1  # given up as soon as the next turn is past the budget


def test_a_callers_deadline_comes_first() -> None:
    """A poll under get(timeout=T) never waits past T: it gets the last SlowDown, retryable."""
    pacer, clock = _pacer()
    _served(pacer, clock, 10, 2.0)
    request = ThrottledRequest(pacer, 60.0, "GET", "k")
    request.answered(_slowdown(), 0.0, 5.0)  # Retry-After: 5 s
    with pytest.raises(ServerError) as exc:
        request.turn(clock.now + 1.0)
    assert not isinstance(exc.value, Throttled) and exc.value.code == "SlowDown"
    assert clock.slept == []
    fresh = ThrottledRequest(pacer, 60.0, "GET", "k2")  # paced, never answered: nothing was sent
    with pytest.raises(RequestTimeout, match="not sent"):
        fresh.turn(clock.now + 1.0)


def test_the_pacers_are_per_store_and_shared_by_its_clients() -> None:
    a = limiter_for(StoreId("http://127.0.0.1:1", "one"))
    assert limiter_for(StoreId("http://127.0.0.1:1", "one")) is a
    assert limiter_for(StoreId("http://127.0.0.1:1", "two")) is not a
    assert a.pacer("GET") is a.pacer("HEAD") is a.reads
    assert a.pacer("PUT") is a.pacer("DELETE") is a.writes


def _client(handler: object, url: str, attempts: int = 1) -> S3Client:
    return S3Client(
        config.build(url=url, environ={}),
        transport_factory=lambda base: HttpxTransport(httpx.MockTransport(handler), base),  # type: ignore[arg-type]
        retry=RetryConfig(max_attempts=attempts, base_delay=0.0),
        sleep=lambda s: None,
    )


SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


def test_throttling_answers_are_not_attempts_and_spend_no_quota() -> None:
    answers = [503] * 5 + [200]

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0)
        return httpx.Response(status, content=SLOWDOWN if status == 503 else b"", headers={"ETag": '"e"'})

    client = _client(handler, "s3result+http://AKID:SECRET@127.0.0.1:9001/bkt/p", attempts=1)
    clock = Clock(time.monotonic())
    client.limits.writes._clock, client.limits.writes._sleep = clock, clock.sleep  # no real waits
    quota = client._quota._tokens  # the quota has no public reading
    assert client.put("p/k", b"v") == '"e"'
    assert client.retries == 0 and client._quota._tokens == quota
    assert client.limits.writes.throttles == 5 and not client.limits.reads.active


def test_throttle_wait_ends_a_request_loudly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=SLOWDOWN)

    client = _client(handler, "s3result+http://AKID:SECRET@127.0.0.1:9002/bkt/p?throttle_wait=0.3")
    started = time.monotonic()
    with pytest.raises(Throttled, match=r"throttle_wait=0\.3s"):
        client.put("p/k", b"v")
    assert time.monotonic() - started < 5


def test_throttle_wait_is_validated() -> None:
    assert config.build(url="s3result://bkt/p?throttle_wait=5", environ={}).throttle_wait == 5.0
    assert config.build(url="s3result://bkt/p", environ={}).throttle_wait == 60.0
    with pytest.raises(Exception, match="throttle_wait"):
        config.build(url="s3result://bkt/p?throttle_wait=-1", environ={})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_fork_while_another_thread_holds_the_lock_leaves_the_child_a_free_one() -> None:
    pacer = Pacer("writes")
    pacer.throttled(0.0)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pacer._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = pacer.reserve(math.inf) is not None
        pacer.throttled(0.0)
        os._exit(0 if ok else 1)
    release.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_cut_with_nothing_to_measure_finds_the_rate_by_doubling() -> None:
    """A process whose first request is throttled knows no rate: it starts low and doubles, not
    a cubic climb from the minimum (a fresh prefork child would crawl at 0.5 requests/s)."""
    pacer, clock = _pacer()
    pacer.throttled(0.0)
    start = pacer.rate()
    assert start == pytest.approx(2.0)
    for _ in range(30):  # 3 s, with a request always waiting
        clock.now += 0.1
        pacer._next = clock.now + 1.0
        pacer.reserve(math.inf)
    assert pacer.rate() >= start * 2**5
    sent = pacer.reserve(math.inf)
    assert sent is not None
    clock.now += 0.01
    before = pacer.rate()
    pacer.throttled(sent)  # throttled again, still nothing measured: half the rate reached
    assert pacer.rate() == pytest.approx(before / 2, rel=0.05)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_threads_queue_for_turns_does_not_inherit_their_queue() -> None:
    """Threads of the parent hold turns far ahead (the store throttled hard): they are not in the
    child, so the child's first request must not wait behind their reservations (the process
    state's limiters slot: kept, each pacer's queued turns dropped)."""
    pacer = limiter_for(StoreId("http://fork-queue.test", "bucket")).writes
    pacer.throttled(0.0)  # nothing measured: 2 requests/s
    now = time.monotonic()
    for _ in range(40):  # 40 requests of the parent's threads queued: the last turn ~20 s away
        assert pacer.reserve(math.inf) is not None
    assert pacer._next > now + 10
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        at = pacer.reserve(math.inf)
        os._exit(0 if at is not None and at - time.monotonic() < 2.0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's first turn is behind the parent's queue"


def test_throttle_wait_0_holds_no_request_back() -> None:
    """throttle_wait=0 waits for nothing: a request the store has not throttled is sent at once
    (never a Throttled for a request that was not sent), a throttling answer raises at once."""
    pacer, clock = _pacer()
    pacer.throttled(0.0)  # pacing at 2/s
    pacer.reserve(math.inf)  # a turn taken by another thread: the next is 0.5 s away
    request = ThrottledRequest(pacer, 0.0, "PUT", "k")
    sent = request.turn(None)
    assert clock.slept == []
    request.answered(_slowdown(), sent, None)
    with pytest.raises(Throttled, match=r"throttle_wait=0s \(1 slow-down"):
        request.turn(None)


def test_a_first_cut_with_nothing_measured_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """The warning never reports a served rate that was not measured (the 0.5/s floor)."""
    pacer, _ = _pacer()
    with caplog.at_level("WARNING", logger="s3result.s3.limiter"):
        pacer.throttled(0.0)
    assert "pacing them at 2.0/s" in caplog.text
    assert "it served" not in caplog.text and "nothing served yet to measure" in caplog.text, caplog.text
