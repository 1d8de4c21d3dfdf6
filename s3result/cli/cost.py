"""Requests per task, from s3result's real write and read paths, and what they cost per month.

The numbers follow the code, and tests compare them with counts taken at the wire
(tests/e2e/test_demo.py runs the demo, which prints both):

- a task's first state is one ``PUT If-None-Match: *``; each later state (STARTED, RETRY, then
  the result) is one ``PUT If-Match`` with the ETag the worker process remembered;
- waiting on a result is one GET per poll (``polls_per_wait``), the last one finding it ready;
  a group's ``get()`` reads every member once, then one pending member per poll until it is
  ready, then the rest (``join_gets``, as ``backend.get_many``); reading a finished result is one GET;
- a chord's ``get()`` also reads its pending parts, one after the other, before the first poll
  and after each poll that finds the body pending (Celery's ``follow_parents``,
  ``chord_wait_gets``); how long one request takes the caller (``latency``) spaces it all out;
- a native chord adds, per part, the counter's compare-and-swap, and per chord the saved group
  and the join (``chord_requests``).
"""

from __future__ import annotations

import argparse
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .expiry import days_text

__all__ = [
    "DEFAULT_LATENCY",
    "POLL_BACKOFF",
    "POLL_FIRST_DELAY",
    "READ_CONCURRENCY",
    "Requests",
    "add_cost_arguments",
    "chord_requests",
    "chord_wait",
    "chord_wait_batched",
    "chord_wait_gets",
    "join_gets",
    "join_gets_equal",
    "monthly_report",
    "per_task_from_args",
    "poll_times",
    "polls_per_wait",
    "task_requests",
    "waves",
]

# The poll schedule of ``result.get()`` with default settings: wait_for polls at once, then
# after ``poll_initial_delay`` (0.025 s), each wait doubling up to ``interval`` (s3result.waits.polling).
# A test checks these against ``polling.delays``; ``poll_initial_delay=off`` is first delay None.
POLL_FIRST_DELAY: float | None = 0.025
POLL_BACKOFF = 2.0

# Seconds one GET of a small result takes its caller: Amazon S3 from the same region answers in
# tens of milliseconds. An input like a task's duration: it spaces the polls out, and a chord's
# get() reads its pending parts one after the other.
DEFAULT_LATENCY = 0.02

# AWS S3 Standard list prices (us-east-1), USD: PUT/COPY/POST/LIST and GET/SELECT per 1,000.
PRICE_PUT_PER_1000 = 0.005
PRICE_GET_PER_1000 = 0.0004
# S3 Standard storage, first 50 TB, per GB-month.
PRICE_STORAGE_GB_MONTH = 0.023


@dataclass(frozen=True)
class Requests:
    """Requests by billing class (DELETE is free on S3, but it is still a request)."""

    puts: float = 0.0
    gets: float = 0.0
    deletes: float = 0.0

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.puts + other.puts, self.gets + other.gets, self.deletes + other.deletes)

    def __mul__(self, n: float) -> Requests:
        return Requests(self.puts * n, self.gets * n, self.deletes * n)

    @property
    def total(self) -> float:
        """All requests."""
        return self.puts + self.gets + self.deletes


def poll_times(
    duration: float,
    interval: float = 0.5,
    first_delay: float | None = None,
    backoff: float = 1.0,
    latency: float = 0.0,
) -> list[float]:
    """When ``result.get()`` polls for a result stored ``duration`` seconds after the call.

    Polls happen at 0, then after ``first_delay`` (default: ``interval``), each next delay
    ``backoff`` times the last, capped at ``interval``, until one finds the result; the sleep
    starts once a poll has its answer, ``latency`` later. The one place the poll schedule
    lives: align it with ``backend.wait_for``.
    """
    if duration < 0 or interval <= 0 or backoff < 1 or latency < 0 or (first_delay is not None and first_delay <= 0):
        raise ValueError("duration >= 0, interval > 0, first_delay > 0, backoff >= 1 and latency >= 0 are required")
    delay = min(interval if first_delay is None else first_delay, interval)
    times = [0.0]
    while times[-1] < duration:
        times.append(times[-1] + latency + delay)
        delay = min(delay * backoff, interval)
    return times


def polls_per_wait(
    duration: float,
    interval: float = 0.5,
    first_delay: float | None = None,
    backoff: float = 1.0,
    latency: float = 0.0,
) -> int:
    """GETs one ``result.get()`` sends for a result stored ``duration`` seconds after the call:
    one per poll that finds nothing, and the one that finds it."""
    return len(poll_times(duration, interval, first_delay, backoff, latency))


def join_gets(
    durations: list[float],
    interval: float = 0.5,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
) -> int:
    """GETs of ``GroupResult.get()`` on results stored ``durations`` seconds after the call.

    As ``backend.get_many``: the first round reads every member; each later round reads one
    member still pending (the sentinel: the last in the group's order), and the others only
    once it is ready. A round's reads go out together (concurrently over the pool) and
    answer ``latency`` later, each finding its result if it was stored by then; the next
    round follows after the same sleeps as a single wait.
    """
    poll_times(max(durations, default=0.0), interval, first_delay, backoff, latency)  # validates the inputs
    delay = min(interval if first_delay is None else first_delay, interval)
    missing = list(range(len(durations)))
    t, gets = 0.0, 0
    sentinel: int | None = None

    def read(members: list[int]) -> set[int]:
        nonlocal t, gets
        gets += len(members)
        t += latency
        return {i for i in members if durations[i] <= t}

    while missing:
        # The sentinel, when set, is still missing until a round finds it (O(1), not a search).
        if sentinel is not None and len(missing) > 1:
            found = read([sentinel])
            if found:
                found |= read([i for i in missing if i != sentinel])
        else:
            found = read(missing)
        if found:  # a round of one sentinel that finds nothing leaves the list as it was
            missing = [i for i in missing if i not in found]
            if sentinel in found:
                sentinel = None
        if not missing:
            break
        if sentinel is None:
            sentinel = missing[-1]
        t += delay
        delay = min(delay * backoff, interval)
    return gets


def join_gets_equal(
    duration: float,
    size: int,
    interval: float = 0.5,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
) -> int:
    """``join_gets`` of ``size`` members that are all stored ``duration`` after the call,
    without a list of ``size``: every member after the second costs what the second does
    (read in the first round, and again in the round that finds them, unless the first did)."""
    if size <= 2:
        return join_gets([duration] * size, interval, first_delay, backoff, latency)
    two = join_gets([duration, duration], interval, first_delay, backoff, latency)
    return two + (size - 2) * (1 if duration <= latency else 2)


def chord_wait_gets(
    body: float,
    parts: list[float],
    interval: float = 0.5,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
    *,
    sender: bool = False,
) -> int:
    """GETs of ``get()`` on a chord's result: the body's polls, and Celery's parent checks.

    Celery (``AsyncResult.get`` with ``follow_parents``) checks the header's results once
    before the first poll, and ``wait_for`` checks them again after every poll that finds the
    body pending, before it sleeps. A check reads the parts one after the other, in the
    group's order, each until one read finds it ready (a ready part is then cached on its
    AsyncResult). ``latency`` is one GET as the caller sees it: a check of many pending parts
    takes that many GETs' time, and pushes the next poll back.

    ``sender``: the caller is the process that sent the chord, so it knows the header's ids
    (``readahead``): a check reads every pending part in one concurrent batch, and the answers
    of the parts still pending stand for a while, so the checks within it read nothing.
    """
    if sender:
        return chord_wait_batched(body, parts, interval, first_delay, backoff, latency)[0]
    return chord_wait(body, parts, interval, first_delay, backoff, latency)[0]


def chord_wait_batched(
    body: float,
    parts: list[float],
    interval: float = 0.5,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
) -> tuple[int, float]:
    """``chord_wait`` for the process that sent the chord: its checks read the header together.

    Celery's check before the wait is a pass over the header (``readahead.ReadAhead.in_pass``):
    the first part alone, then as many parts ahead as the pass has read (at most ``AHEAD``),
    each batch concurrently; the parts still pending stand for the checks made while waiting.
    Those read every pending part in one batch, whose pending answers stand a while again (a
    header of more than ``WINDOW`` parts is read in windows: counted here as one batch).
    """
    from ..waits.readahead import AHEAD, FRESH, PATIENCE, RATE, WINDOW

    pending: list[float] = []
    stands_until = -math.inf
    stand = min(max(FRESH, len(parts) / RATE), PATIENCE)

    def check(now: _Now, first: bool) -> None:
        nonlocal pending, stands_until
        if first:
            read = 0
            while read < len(parts):
                batch = parts[read : read + max(1, min(read, AHEAD))]
                now.gets += len(batch)
                now.t += latency * math.ceil(len(batch) / READ_CONCURRENCY)
                still = [done for done in batch if done > now.t]
                if still and not pending:
                    stands_until = now.t + stand  # the first pending answer stops standing first
                pending += still
                read += len(batch)
            pending.sort()
            return
        if now.t <= stands_until or not pending:
            return  # the pending answers of the last batch stand: nothing is read
        n = len(pending)
        now.gets += n
        now.t += latency * math.ceil(n / READ_CONCURRENCY)
        pending = [done for done in pending if done > now.t]
        if n > 1:  # a batch's answers stand; one part alone is read as Celery reads it
            stands_until = now.t + min(max(FRESH, min(n, WINDOW) / RATE), PATIENCE)

    return _body_polls(body, interval, first_delay, backoff, latency, check)


@dataclass
class _Now:
    """Where a wait is: the time (s after the call) and the GETs sent so far."""

    t: float = 0.0
    gets: int = 0


def _body_polls(
    body: float,
    interval: float,
    first_delay: float | None,
    backoff: float,
    latency: float,
    check: Callable[[_Now, bool], None],
) -> tuple[int, float]:
    """The body's polls of a chord's ``get()``, with ``check`` (Celery's check of the parts)
    before the first poll (``first``) and after each poll that finds the body pending, before
    the sleep: the GETs sent and when the wait ends (its last answer)."""
    poll_times(body, interval, first_delay, backoff, latency)  # validates the inputs
    delay = min(interval if first_delay is None else first_delay, interval)
    now = _Now()
    check(now, True)
    while True:
        now.gets += 1  # the poll of the body
        now.t += latency
        if body <= now.t:
            return now.gets, now.t
        check(now, False)
        now.t += delay
        delay = min(delay * backoff, interval)


def chord_wait(
    body: float,
    parts: list[float],
    interval: float = 0.5,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
) -> tuple[int, float]:
    """``chord_wait_gets`` and when the wait ends (its last answer)."""
    # Runs of parts that end together, in the group's order: a chord of a million equal parts
    # is one run, and a check costs O(runs), not O(parts).
    runs: list[list[float]] = []
    for done in parts:
        if runs and runs[-1][0] == done:
            runs[-1][1] += 1
        else:
            runs.append([done, 1])
    return _chord_wait_runs(body, runs, interval, first_delay, backoff, latency)


def _chord_wait_runs(
    body: float,
    runs: list[list[float]],
    interval: float,
    first_delay: float | None,
    backoff: float,
    latency: float,
) -> tuple[int, float]:
    """``chord_wait`` on runs of parts, ``[ends at, how many]`` in the group's order: ``cost``
    hands a chord of N equal parts over as one run, never as a list of N."""
    # Waves (``cost --worker-concurrency``) come in order of their end: a check then looks only
    # at the runs that can end before it does; the others are read and still pending as a whole.
    ordered = all(a[0] <= b[0] for a, b in zip(runs, runs[1:], strict=False))
    pending = deque(runs)
    waiting = sum(count for _, count in runs)

    def check(now: _Now, _first: bool) -> None:
        nonlocal waiting
        end = now.t + latency * waiting
        kept: list[list[float]] = []
        seen = 0.0
        while pending and not (ordered and pending[0][0] > end):
            done, count = pending.popleft()
            # Read i of this run (1-based) answers at t + i * latency; it finds the part
            # still pending while that is before ``done``.
            if latency > 0:
                ahead = (done - now.t) / latency  # inf when a GET takes next to no time: all still pending
                still = count if ahead > count else max(0.0, math.ceil(ahead) - 1) if ahead > 0 else 0
            else:
                still = count if done > now.t else 0
            now.t += latency * count
            seen += count
            if still:
                kept.append([done, still])
            waiting -= count - still
        rest = waiting - sum(n for _, n in kept)  # the runs not looked at: read, and still pending
        now.gets += int(seen + rest)
        now.t += latency * rest
        pending.extendleft(reversed(kept))

    return _body_polls(body, interval, first_delay, backoff, latency, check)


def task_requests(
    *,
    states: float = 1,
    waited: float = 1.0,
    duration: float = 0.0,
    interval: float = 0.5,
    reads: float = 0.0,
    first_delay: float | None = POLL_FIRST_DELAY,
    backoff: float = POLL_BACKOFF,
    latency: float = 0.0,
) -> Requests:
    """One task: ``states`` PUTs (each later state one PUT, thanks to the remembered ETag), the
    polls of whoever waits for it (``waited``: the share of tasks someone calls ``get()`` on),
    and ``reads`` more GETs of the finished result."""
    polls = polls_per_wait(duration, interval, first_delay, backoff, latency) if waited else 0
    return Requests(puts=states, gets=waited * polls + reads)


# A native chord (chords.py, chordtree.py, chording.py): the producer saves the group (PUT), creates
# the counter (PUT) and records the chord's size in it (GET + PUT); per part, a compare-and-swap on its
# leaf, a GET and a PUT (a leaf's first part creates it without the GET; more under contention), and
# the part that completes a node the same on its parent; the part that completes the root reads the
# group (and the nodes whose slots its root state does not carry), then deletes root, nodes and group.
# Compare-and-swap rounds per part (counter and tree PUTs, the producer's two included): 1.5 and more
# with every part at once on 24 processes (benchmarks/RESULTS.md), about 1.05 from 1,000 parts up. A
# worker of many threads (-P threads, gevent, eventlet) counts the parts its process finished
# meanwhile in one round (counter.group_commit): 20 parts of 1 s at -P threads -c 50 took 4-6
# counter PUTs in all, 0.2-0.3 per part, at the wire.
CHORD_CAS_ROUNDS_PER_PART = 1.5


#: GETs a client sends at once for a batch of reads (``S3Client.get_each``: its pool, at most 16).
READ_CONCURRENCY = 16

#: ``S3Backend.chord_tree_from``: chords of this many plain tasks or more count in a tree fitted to
#: their size (``treegeometry.Geometry.fit``); a test holds it to the backend's.
CHORD_TREE_FROM = 2

#: Bytes of a part's slot with a small result (6 hex digits, an int, JSON's quotes and comma).
SLOT_BYTES = 12


def chord_requests(parts: int, cas_rounds: float = CHORD_CAS_ROUNDS_PER_PART) -> Requests:
    """What a native chord of ``parts`` adds to its tasks' own state writes.

    ``cas_rounds``: the counter's and its tree's PUTs per part; contention decides it, so it is
    an input like a task's duration (below 1 when a process's threads commit their parts
    together). Every such PUT follows a GET, but the producer's creation of the counter and
    each leaf's creation by its first part. From ``CHORD_TREE_FROM`` parts the chord counts in
    the tree ``Geometry.fit`` gives it: the part that completes the root joins from the state it
    wrote when the nodes' slots travel into the root (``Geometry.root_value``, small results of
    ``SLOT_BYTES``), else it reads the nodes of the tree's join level; the clean-up deletes the
    root, every node and the group.
    """
    if parts < CHORD_TREE_FROM:
        return Requests(puts=1 + cas_rounds * parts, gets=(cas_rounds * parts - 1) + 1, deletes=2)
    leaves, nodes, join = _tree_nodes(parts)
    counter_puts = cas_rounds * parts
    return Requests(
        puts=1 + counter_puts,
        gets=(counter_puts - 1 - leaves) + 1 + join,
        deletes=2 + nodes,
    )


#: Chords up to this many parts are counted on the tree ``Geometry.fit`` builds; larger ones on its
#: arithmetic (a billion parts would be 30 million leaves).
EXACT_TREE_MAX = 100_000


def _tree_nodes(parts: int) -> tuple[int, int, int]:
    """The fitted tree's leaves, its nodes below the root, and the nodes the join reads."""
    from ..chords.geometry import FILL, STRIPES, Geometry

    if parts > EXACT_TREE_MAX:  # the staggered geometry: a leaf per FILL rows of a stripe, plus one per
        leaves = -(-parts // FILL) + STRIPES  # stripe for its first, shorter leaf; fan-in 4 above them
        inner, level = 0, leaves
        while level > 4:
            level = -(-level // 4)
            inner += level
        return leaves, leaves + inner, -(-parts // (FILL * 16))
    tree = Geometry.fit(parts)
    under_child = -(-parts // len(tree.expected(tree.height, 0)))  # parts under the root's biggest child
    carried = tree.root_value(["x" * (SLOT_BYTES - 3)] * under_child) is not None
    nodes = sum(len(level) for level in tree.levels[:-1])
    return len(tree.levels[0]), nodes, 0 if carried else len(tree.levels[tree.join_level])


def monthly_report(
    *,
    tasks_per_day: float,
    per_task: Requests,
    result_bytes: int,
    retention_days: float,
    put_per_1000: float,
    get_per_1000: float,
    storage_gb_month: float,
) -> str:
    """Requests and storage per 30-day month; ``OverflowError`` when a figure is not finite."""
    month = 30 * tasks_per_day
    puts, gets = month * per_task.puts, month * per_task.gets
    stored_gb = tasks_per_day * retention_days * result_bytes / 1e9
    put_cost, get_cost = puts / 1000 * put_per_1000, gets / 1000 * get_per_1000
    storage_cost = stored_gb * storage_gb_month
    total = put_cost + get_cost + storage_cost
    if not all(math.isfinite(x) for x in (puts, gets, stored_gb, total)):
        raise OverflowError("the monthly figures overflow a float")
    return (
        f"{tasks_per_day:,.0f} tasks/day, {month:,.0f} per month; per task {per_task.puts:g} PUT, "
        f"{per_task.gets:g} GET\n"
        f"  PUT  {puts:>14,.0f} requests x ${put_per_1000}/1000 = ${put_cost:,.2f}\n"
        f"  GET  {gets:>14,.0f} requests x ${get_per_1000}/1000 = ${get_cost:,.2f}\n"
        f"  storage {stored_gb:,.4f} GB kept ({days_text(retention_days)} x {result_bytes} B) x ${storage_gb_month}/GB-month = ${storage_cost:,.2f}\n"
        f"  total ${total:,.2f} per month\n"
        "  (DELETE is free on S3; lifecycle expirations are free. Prices are parameters: --put-price, --get-price, --storage-price.)\n"
    )


def add_cost_arguments(
    p: argparse.ArgumentParser, number: Callable[[type[int] | type[float], float, str], Any]
) -> None:
    """The ``s3result cost`` options; ``number`` builds argparse types that refuse nonsense."""
    count = number(float, 0, "number (0 or more)")
    p.add_argument(
        "--tasks-per-day",
        type=number(float, 1, "number of tasks (1 or more)"),
        required=True,
        help="tasks your app runs per day (required)",
    )
    p.add_argument("--track-started", action="store_true", help="task_track_started: one more state (1 PUT)")
    p.add_argument("--retries-per-task", type=count, default=0.0, help="RETRY states per task (1 PUT each)")
    p.add_argument(
        "--waited", type=count, default=1.0, help="share of tasks whose result someone waits for with get() (default 1)"
    )
    p.add_argument(
        "--task-seconds", type=count, default=1.0, help="time from the call to the stored result (default 1)"
    )
    p.add_argument(
        "--interval",
        type=number(float, 0.001, "poll interval in seconds"),
        default=0.5,
        help="result.get(interval=...) (Celery's default 0.5)",
    )
    p.add_argument(
        "--latency",
        type=count,
        default=DEFAULT_LATENCY,
        help=f"seconds one request takes the caller (default {DEFAULT_LATENCY}; `s3result demo` measures its own): "
        "a chord's get() reads pending parts one after the other",
    )
    p.add_argument("--reads-per-task", type=count, default=0.0, help="further reads of a finished result (default 0)")
    p.add_argument(
        "--group-size",
        type=number(int, 0, "whole number of tasks"),
        default=0,
        help="tasks are members of groups of N, each waited for with one GroupResult.get()",
    )
    p.add_argument(
        "--worker-concurrency",
        type=number(int, 0, "whole number of tasks"),
        default=0,
        help="tasks your workers run at once (default 0: all of a group or chord at once); "
        "members and parts then finish in waves of this many, --task-seconds each",
    )
    p.add_argument(
        "--chord-parts", type=number(int, 0, "whole number of parts"), default=0, help="tasks are parts of chords of N"
    )
    p.add_argument(
        "--chord-cas-rounds",
        type=number(float, 0.01, "number of rounds (0.01 or more)"),
        default=CHORD_CAS_ROUNDS_PER_PART,
        help=f"counter compare-and-swap rounds per chord part, contention included ({CHORD_CAS_ROUNDS_PER_PART}, "
        "as with prefork; a threads, gevent or eventlet worker counts a process's finished parts together: "
        "0.2-0.3 measured for 20 parts at -P threads -c 50)",
    )
    p.add_argument(
        "--result-bytes", type=number(int, 1, "size in bytes"), default=300, help="average stored result (300)"
    )
    p.add_argument(
        "--retention-days", type=number(float, 0.01, "number of days"), default=1.0, help="lifecycle rule (1)"
    )
    p.add_argument("--put-price", type=count, default=PRICE_PUT_PER_1000, help="USD per 1,000 PUT (default 0.005)")
    p.add_argument("--get-price", type=count, default=PRICE_GET_PER_1000, help="USD per 1,000 GET (default 0.0004)")
    p.add_argument("--storage-price", type=count, default=PRICE_STORAGE_GB_MONTH, help="USD per GB-month (0.023)")


#: Waves of a group or chord the arithmetic follows one by one (a chord's checks read them all).
MAX_WAVES = 10_000


def waves(tasks: int, concurrency: int, seconds: float) -> list[list[float]]:
    """When the tasks of a group or chord are done, as runs ``[done at, how many]``.

    Workers take them in the group's order, ``concurrency`` at a time (0: all at once), each
    taking ``seconds``: the first wave is done after ``seconds``, the next after twice that.
    """
    if not concurrency or concurrency >= tasks:
        return [[seconds, tasks]]
    full, rest = divmod(tasks, concurrency)
    if full + bool(rest) > MAX_WAVES:
        raise ValueError(f"more than {MAX_WAVES:,} waves of {concurrency} tasks")
    runs: list[list[float]] = [[(w + 1) * seconds, concurrency] for w in range(full)]
    if rest:
        runs.append([(full + 1) * seconds, rest])
    return runs


def per_task_from_args(args: argparse.Namespace) -> Requests:
    """Requests per task for the ``cost`` options (chords: the body is one more task per chord)."""
    states = 1 + int(args.track_started) + args.retries_per_task
    task = task_requests(
        states=states,
        waited=args.waited,
        duration=args.task_seconds,
        interval=args.interval,
        reads=args.reads_per_task,
        latency=args.latency,
    )
    if args.chord_parts:
        # Per chord: the parts' states, the body's, the chord's own requests, and one get() on it.
        parts = int(args.chord_parts)
        runs = waves(parts, int(args.worker_concurrency), args.task_seconds)
        chord: Requests = (
            task_requests(states=states, waited=0, reads=args.reads_per_task) * (parts + 1)
            + chord_requests(parts, cas_rounds=args.chord_cas_rounds)
            + Requests(
                gets=args.waited
                * _chord_wait_runs(
                    runs[-1][0],  # the body: as soon as the last part is done
                    runs,
                    args.interval,
                    POLL_FIRST_DELAY,
                    POLL_BACKOFF,
                    args.latency,
                )[0]
            )
        )
        return chord * (1.0 / (parts + 1))  # per task: the parts and the body
    if args.group_size:
        # Per group: the members' states, and one GroupResult.get() on all of them.
        size = int(args.group_size)
        runs = waves(size, int(args.worker_concurrency), args.task_seconds)
        if len(runs) == 1 or size > 100_000:
            # In waves, the sentinel (the last member) is done last, so after the first round
            # (which finds no one while a task outlasts a read) only it is read until then.
            join = join_gets_equal(runs[-1][0], size, args.interval, latency=args.latency)
        else:
            join = join_gets(
                [done for done, count in runs for _ in range(int(count))], args.interval, latency=args.latency
            )
        members = task_requests(states=states, waited=0, reads=args.reads_per_task) * size
        return (members + Requests(gets=args.waited * join)) * (1.0 / size)
    return task
