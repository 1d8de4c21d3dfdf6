"""Back-pressure: a per-process, per-store rate limiter fed by the store's throttling answers.

S3 allows a rate per partitioned prefix and answers ``503 SlowDown`` above it; other stores
answer 429 or send ``Retry-After``. A throttled request must wait, not fail: retrying it at once
only adds load, and retrying it a few times then raising loses the result. So every request of
the process to one store takes its turn from a pacer, one for reads (GET, HEAD) and one for
writes (PUT, DELETE), because S3 limits them separately.

Compared with botocore's adaptive mode (``botocore/retries/adaptive.py``, ``throttling.py``),
which measures its *sending* rate, cuts it to 0.7x on every throttling answer and climbs back
along a cubic curve in absolute requests/s (69% of a store's limit, measured):

- A pacer is off, and costs one timestamp per success, until the store first throttles.
- On a throttling answer the rate becomes 0.95x the *success* rate measured just before: what
  the store really served, not what was offered. Within one congestion episode the success
  rate is measured from the episode's start, so a store's burst allowance does not count.
- At most one cut per round trip, as TCP does: an answer to a request sent before the last cut
  says nothing new, so a burst of 16 SlowDowns is one cut, not sixteen.
- The rate climbs back along a cubic curve relative to the rate cut from (``W``): flat near
  ``W`` for ~1.7 s, then faster, so a store that grew (S3 split a partition) is found again.
  The climb stops while the process is not using its rate (no request had to wait), so a quiet
  process does not bank a rate that a later burst would overshoot with.
- A cut with no success to measure (a process's first request throttled) starts at 2/s and
  doubles every 0.5 s (TCP's slow start), halving on each throttling answer meanwhile.
- ``Retry-After`` holds every new turn until it has passed.
- Turns are handed out as reservations under the lock (a virtual clock, GCRA); the sleep comes
  after, outside it. Nothing sleeps while holding the lock, so threads and gevent greenlets
  share a pacer, and a fork renews its lock.
- A pacer switches itself off again after a minute without throttling.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .config import StoreId
from .errors import RequestTimeout, S3Error, Throttled
from .process import PROCESS, renew_locks_after_fork
from .retry import sleep

__all__ = [
    "DEFAULT_PACING",
    "LIMITERS",
    "Pacer",
    "PacingConfig",
    "StoreLimiter",
    "ThrottledRequest",
    "limiter_for",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingConfig:
    """The pacer's constants; each default says why in the comment next to it."""

    #: The rate after a cut, as a fraction of the success rate measured: close to 1, because
    #: the measurement is what the store served; the 5% below it drains the store's queue.
    beta: float = 0.95
    #: Cubic climb ``W * (1 + cubic * (t - K)**3)``: back at ``W`` after K = 1.7 s, +8% at 3.7 s,
    #: +27% at 4.7 s: a few % per second near the limit, doubling within ~6 s past it.
    cubic: float = 0.01
    #: The lowest rate (requests/s) a cut can set: a store that throttles everything is still asked.
    min_rate: float = 0.5
    #: Successes measured over at least this window (seconds), and at least ``min_samples`` of them.
    window: float = 0.5
    min_samples: int = 8
    #: How far back (seconds) a process with fewer recent successes looks for ``min_samples``.
    lookback: float = 10.0
    #: Throttling answers further apart than this (seconds) are separate congestion episodes.
    episode_gap: float = 1.0
    #: Back off (switch the pacer off: no cost, no limit) after this long without throttling.
    off_after: float = 60.0
    #: Cut with no recent success to measure (a process's first request throttled): the rate
    #: starts at ``probe_start`` and doubles every this many seconds until the next throttling.
    probe_doubling: float = 0.5
    #: The rate (requests/s) such a probe starts from; halved at each throttling answer meanwhile.
    probe_start: float = 2.0
    #: Requests that may go back to back after a pause.
    burst: float = 1.0


DEFAULT_PACING = PacingConfig()


class Pacer:
    """One class of requests (reads or writes) to one store: their shared send rate."""

    def __init__(
        self,
        name: str,
        config: PacingConfig = DEFAULT_PACING,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self._sleep = sleep  # None: retry.sleep, which looks time.sleep up at call time (gevent patches it late)
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self.reset()

    def reset(self) -> None:
        """Forget what was learnt: off, no history (a test between two scenarios, say)."""
        #: True once the store has throttled these requests; read without the lock on the hot path.
        self.active = False
        #: Times of recent successes: deque.append is atomic, so the hot path takes no lock.
        self._successes: deque[float] = deque(maxlen=512)
        self._w = math.inf  # the rate cut from (requests/s)
        self._cut_at = -math.inf  # when the last cut happened
        self._climb_from = -math.inf  # the cubic clock's origin: the last cut, moved on while idle
        self._next = -math.inf  # the virtual clock: the next free turn
        self._hold = -math.inf  # Retry-After: no turn before this
        self._episode = -math.inf
        self._last_throttle = -math.inf
        self._tick = 0.0
        self._waited = False
        self._probing = False
        #: Throttling answers and cuts seen (for reports and tests).
        self.throttles = 0
        self.cuts = 0

    def after_fork_in_child(self) -> None:
        """The turns reserved by the parent's threads are not the child's: drop them, keep the rate.

        Threads that queued for turns (the last one maybe far ahead) exist only in the parent: a
        child behind their reservations would wait for requests nobody will send.
        """
        self._next = -math.inf
        self._waited = False

    def __repr__(self) -> str:
        state = f"{self.rate():.1f}/s" if self.active else "off"
        return f"Pacer({self.name}, {state}, throttles={self.throttles}, cuts={self.cuts})"

    def throttled_request(self, budget: float, method: str, key: str) -> ThrottledRequest:
        """One request's waiting on this pacer, once the store throttles it (``budget``: ``throttle_wait``)."""
        return ThrottledRequest(self, budget, method, key)

    # -- the hot path ----------------------------------------------------------------------

    def succeeded(self) -> None:
        """The store served a request of this class (any answer but throttling: a 404 or 412 too)."""
        self._successes.append(self._clock())

    # -- turns ----------------------------------------------------------------------------

    def rate(self, now: float | None = None) -> float:
        """The send rate now (requests/s); infinite while off."""
        if not self.active:
            return math.inf
        now = self._clock() if now is None else now
        c = self._config
        k = ((1 - c.beta) / c.cubic) ** (1 / 3)
        t = now - self._climb_from
        if self._probing:
            # Cut without a measurement (no recent success): find the rate by doubling, as
            # TCP's slow start does, instead of a cubic climb from the minimum.
            return float(self._w * 2 ** min(t / c.probe_doubling, 30))
        return max(c.min_rate, self._w * (1 + c.cubic * float(t - k) ** 3))

    def reserve(self, until: float) -> float | None:
        """A turn no later than ``until``: the time to send at, or None (nothing reserved)."""
        with self._lock:
            if not self.active:
                return self._clock()
            now = self._clock()
            self._freeze_when_idle(now)
            rate = self.rate(now)
            at = max(self._next, now - self._config.burst / rate, self._hold)
            if at > until:
                return None
            self._next = at + 1 / rate
            if at > now:
                self._waited = True
            return at

    def wait_until(self, at: float) -> None:
        """Sleep until a reserved turn (outside the lock)."""
        pause = at - self._clock()
        if pause > 0:
            (self._sleep or sleep)(pause)

    def _freeze_when_idle(self, now: float) -> None:
        """Stop the climb while no request waits; switch off after a long quiet (lock held)."""
        elapsed = now - self._tick
        if elapsed < 0.1:
            return
        if not self._waited:
            self._climb_from += elapsed  # the cubic clock stands still
        self._waited = False
        self._tick = now
        if now - self._last_throttle > self._config.off_after:
            self.active = False
            logger.info(
                "s3result: the store has not throttled %s for %.0fs; pacing off", self.name, now - self._last_throttle
            )

    # -- feedback --------------------------------------------------------------------------

    def throttled(self, sent: float, wait: float | None = None) -> None:
        """The store throttled a request sent at ``sent`` (0: sent while off); ``wait``: Retry-After."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if wait:
                self._hold = max(self._hold, now + wait)
            if now - self._last_throttle > self._config.episode_gap:
                self._episode = now
            self._last_throttle = now
            if self.active and sent < self._cut_at:
                return  # sent before the last cut: that cut already answered this congestion
            since = self._episode if now - self._episode >= 0.2 else now - self._config.window
            measured, samples = self._measure(now, since)
            current = self.rate(now)
            first = not self.active
            if samples >= 2:
                self._w = max(min(measured, current), self._config.min_rate)
            elif self.active and self._probing:  # throttled again with nothing to measure: halve
                self._w = max(current / 2, self._config.min_rate)
            else:  # nothing to measure yet: a first guess, then doubling (rate())
                self._w = self._config.probe_start
            self._probing = samples < 2
            self._cut_at = self._climb_from = self._tick = now
            self.active = True
            # The store has no allowance left: the next turn is one interval away at the new rate
            # (not now: each cut would let one request straight into another SlowDown, a cascade
            # of cuts). Turns queued at the old rate queue again (ThrottledRequest.turn).
            self._next = now + 1 / self.rate(now)
            self.cuts += 1
        log = logger.warning if first else logger.info
        served = f"it served {measured:.1f}/s" if samples >= 2 else "nothing served yet to measure: doubling"
        log("s3result: the store is throttling %s; pacing them at %.1f/s (%s)", self.name, self.rate(now), served)

    def _measure(self, now: float, since: float) -> tuple[float, int]:
        """Successes per second since ``since``, over at least ``min_samples`` of them, and how
        many were counted (lock held)."""
        stamps = list(self._successes)  # a copy: other threads append meanwhile
        recent = [t for t in stamps if t >= since]
        if len(recent) >= self._config.min_samples:
            # From ``since``, unless this process's history starts later than that.
            start = since if stamps[0] < since else recent[0]
        else:
            # A slow process (one prefork child's share of a fleet: a few requests/s) looks further
            # back for its samples, or each of its cuts would be a guess.
            recent = [t for t in stamps[-self._config.min_samples :] if t > now - self._config.lookback]
            if not recent:
                return self._config.min_rate, 0
            start = recent[0]
        return len(recent) / max(now - start, 1e-3), len(recent)


class ThrottledRequest:
    """One request's waiting on throttling: its turns, its ``throttle_wait`` budget, its last answer.

    Made only once the request meets an active pacer or a throttling answer: the hot path
    builds nothing. Throttling answers are not attempts: they spend no retry quota and do not
    count against ``max_attempts``; only the budget (and the caller's deadline) ends them.
    """

    __slots__ = ("_budget", "_key", "_method", "_pacer", "_until", "answers", "error")

    def __init__(self, pacer: Pacer, budget: float, method: str, key: str) -> None:
        self._pacer = pacer
        self._budget = budget
        self._method = method
        self._key = key
        self._until: float | None = None
        self.answers = 0
        self.error: S3Error | None = None

    def turn(self, deadline: float | None) -> float:
        """Wait for this request's turn (``time.monotonic()`` deadline) and return when it was."""
        now = self._pacer._clock()
        if self._until is None:
            self._until = now + self._budget
        elif self.error is not None and now >= self._until:
            raise self._over_budget()
        if self._budget <= 0:
            # throttle_wait=0 waits for nothing: sent at once, and a throttling answer raises
            # (above). Held back by the pacer, it would raise Throttled without being sent.
            return now
        limit = self._until if deadline is None else min(self._until, deadline)
        while True:
            cuts = self._pacer.cuts
            at = self._pacer.reserve(limit)
            if at is None:
                raise self._give_up(deadline)
            self._pacer.wait_until(at)
            if self._pacer.cuts == cuts:
                return at
            # The rate was cut while this request waited: its turn was spaced at the old rate
            # (the one the store just refused), so it queues again at the new one.

    def _give_up(self, deadline: float | None) -> S3Error | RequestTimeout:
        """The error when no turn fits: the deadline's, or past ``throttle_wait``, ``Throttled``."""
        if deadline is not None and self._until is not None and deadline < self._until:
            # The caller's deadline comes first (a poll under get(timeout=T)): the last
            # throttling answer (retryable: the waiting loop polls on), or nothing sent.
            if self.error is not None:
                return self.error
            return RequestTimeout(
                f"S3 {self._method} {self._key!r}: not sent, the store is throttling "
                f"{self._pacer.name} and the next turn is past the deadline",
                method=self._method,
                key=self._key,
            )
        return self._over_budget()

    def answered(self, error: S3Error, sent: float, wait: float | None) -> None:
        """The store throttled this request (sent at ``sent``): feed the pacer, keep the answer."""
        self.answers += 1
        self.error = error
        if self._until is None:
            self._until = self._pacer._clock() + self._budget
        self._pacer.throttled(sent, wait)

    def _over_budget(self) -> Throttled:
        last = self.error
        fields = (
            last.fields()
            if last is not None
            else {"status": 503, "code": "SlowDown", "method": self._method, "key": self._key}
        )
        hint = (
            f"the store kept throttling {self._pacer.name} for over throttle_wait={self._budget:g}s "
            f"({self.answers} slow-down answers to this request); raise throttle_wait, spread the load "
            "(fewer worker processes or a lower task rate), or ask AWS to partition the prefix"
        )
        return Throttled(**{**fields, "hint": hint})


class StoreLimiter:
    """The two pacers of one store in this process: reads (GET, HEAD) and writes (PUT, DELETE)."""

    def __init__(self, config: PacingConfig = DEFAULT_PACING) -> None:
        self.reads = Pacer("reads", config)
        self.writes = Pacer("writes", config)

    def pacer(self, method: str) -> Pacer:
        """The pacer of requests with this method."""
        return self.reads if method in ("GET", "HEAD") else self.writes

    def after_fork_in_child(self) -> None:
        """In a forked child: both pacers drop the turns the parent's threads reserved."""
        self.reads.after_fork_in_child()
        self.writes.after_fork_in_child()


# The process's one limiter per store: back-pressure is the store's, so every client of it shares one.
LIMITERS = PROCESS.store_slot(
    "s3.limiter.limiters",
    StoreLimiter,
    key=StoreId,
    fork="kept",
    why="the pacers of each store, shared by every client of it: the rate learnt still holds, queued turns dropped",
    after_fork=StoreLimiter.after_fork_in_child,
)


def limiter_for(store: StoreId) -> StoreLimiter:
    """The process's limiter for ``store`` (``S3Config.store_id``): every client of it shares one."""
    return LIMITERS.get(store)
