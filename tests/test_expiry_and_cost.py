"""Pure arithmetic of the command: which lifecycle rules cover a prefix, and requests per task.

Integration: tests/integration/test_lifecycle.py (moto, Ceph RGW) and tests/e2e/test_demo.py
(the arithmetic against the wire count).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3result.cli.cost import Requests, chord_wait_gets, polls_per_wait, task_requests
from s3result.cli.expiry import coverage, days_from_expires, parse_rules, to_xml

DOC = b"""<?xml version="1.0" encoding="UTF-8"?>
<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Rule><ID>legacy</ID><Prefix>cel</Prefix><Status>Enabled</Status><Expiration><Days>9</Days></Expiration></Rule>
  <Rule><ID>tagged</ID><Filter><And><Prefix>celery/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter>
    <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>
  <Rule><ID>off</ID><Filter><Prefix>celery/</Prefix></Filter><Status>Disabled</Status>
    <Expiration><Days>1</Days></Expiration></Rule>
  <Rule><ID>other</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>
    <Expiration><Days>2</Days></Expiration></Rule>
  <Rule><ID>transition-only</ID><Filter/><Status>Enabled</Status>
    <Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>
</LifecycleConfiguration>"""


def test_coverage_ignores_disabled_tagged_and_unrelated_rules() -> None:
    rules = parse_rules(DOC)
    found = coverage(rules, "celery")
    assert found is not None and found.id == "legacy" and found.days == 9
    assert coverage(rules, "logs") is not None and coverage(rules, "results") is None
    assert coverage(parse_rules(to_xml(rules)), "celery") == found  # written back, read the same


def test_days_from_result_expires() -> None:
    assert days_from_expires(None) is None and days_from_expires(0) is None
    assert days_from_expires(60) == 1 and days_from_expires(86400) == 1 and days_from_expires(86401) == 2
    assert days_from_expires(dt.timedelta(days=3)) == 3


@pytest.mark.parametrize(
    ("duration", "interval", "first", "backoff", "polls"),
    [
        (0.0, 0.5, None, 1.0, 1),  # ready at once: one GET
        (0.3, 0.5, None, 1.0, 2),  # polls at 0 and 0.5
        (1.0, 0.5, None, 1.0, 3),  # 0, 0.5, 1.0
        (5.0, 1.0, None, 1.0, 6),
        (1.0, 0.5, 0.05, 2.0, 6),  # 0, .05, .15, .35, .75, 1.25: starts soon, backs off to the interval
    ],
)
def test_polls_per_wait(duration: float, interval: float, first: float | None, backoff: float, polls: int) -> None:
    assert polls_per_wait(duration, interval, first, backoff) == polls


def test_nonsense_is_refused_and_requests_add_up() -> None:
    for bad in ((-1, 0.5), (1, 0), (1, -2)):
        with pytest.raises(ValueError):
            polls_per_wait(*bad)
    assert task_requests(states=2, duration=0) == Requests(puts=2, gets=1)
    assert task_requests(waited=0, reads=1) == Requests(puts=1, gets=1)
    # A chord's get(): the body polled twice, and each part read at both parent checks until ready.
    assert chord_wait_gets(0.3, [0.1, 0.6], first_delay=None, backoff=1.0) == 2 + 2 + 2
    assert chord_wait_gets(0.0, [0.0], first_delay=None, backoff=1.0) == 1 + 1
    # The process that sent the chord: Celery's check before the wait is a pass over the header,
    # read ahead; its pending answers stand for the checks while it waits, which read the header
    # in one batch whose pending answers stand a while again (readahead: 500 / 50 s, at most 5 s).
    # 500 parts pending, a body at 12 s: the pass, a batch at 5.5 s and at 11 s, and 25 polls;
    # one by one, every poll's check reads 500.
    assert chord_wait_gets(12.0, [20.0] * 500, first_delay=None, backoff=1.0, sender=True) == 3 * 500 + 25
    assert chord_wait_gets(12.0, [20.0] * 500, first_delay=None, backoff=1.0) == 25 * 500 + 25
    # The pass's two pending answers stand 0.25 s: the check after the first poll reads neither.
    assert chord_wait_gets(0.3, [0.1, 0.6], first_delay=None, backoff=1.0, sender=True) == 2 + 2


@pytest.mark.parametrize("duration", [0.0, 0.02, 0.1, 0.3, 0.8, 1.0, 5.0])
@pytest.mark.parametrize("first", [0.025, 0.1, None])
def test_cost_polls_on_the_schedule_wait_for_uses(duration: float, first: float | None) -> None:
    """``cost`` and ``backend.wait_for`` share one schedule: ``polling.delays``."""
    from itertools import accumulate, islice

    from s3result.cli.cost import POLL_BACKOFF, POLL_FIRST_DELAY
    from s3result.results import config
    from s3result.waits.polling import delays

    assert POLL_FIRST_DELAY == config.build(url="s3result://bucket", environ={}).poll_initial_delay
    times = [0.0, *accumulate(islice(delays(first, 0.5), 100))]
    expected = next(i for i, t in enumerate(times) if t >= duration) + 1
    assert polls_per_wait(duration, 0.5, first, POLL_BACKOFF) == expected


def test_join_gets_follow_get_many() -> None:
    """Round 1 reads all; later rounds read the last member still missing, the rest once it is ready."""
    from s3result.cli.cost import join_gets

    assert join_gets([0.0] * 5) == 5  # all ready: one round
    # 10 members, the last ready at 0.3 s: 10, then one GET at 0.025, 0.075, 0.175, then at
    # 0.375 the sentinel is ready and the 9 others are read: 10 + 3 + 10.
    assert join_gets([0.05] * 9 + [0.3]) == 10 + 3 + 10
    # With 0.1 s per round, a round's reads answer 0.1 s after they go out: the first (0 -> 0.1)
    # finds the nine 0.05 s results; the last one's reads answer at 0.225 (pending), 0.375 (found).
    assert join_gets([0.05] * 9 + [0.3], latency=0.1) == 10 + 1 + 1


def test_a_join_costs_what_get_many_sends_not_one_wait_per_result() -> None:
    """GroupResult.get() of 100 x 5 s: 212 GETs at the wire (benchmarks/waits.py, README); the join's
    sentinel rounds, not 100 separate waits (100 x 15 = 1,500), which the demo's arithmetic assumed."""
    from s3result.cli.cost import join_gets

    assert abs(join_gets([5.0] * 100) - 212) <= 0.05 * 212
    assert join_gets([0.3] * 20) == 20 + 3 + 20  # a full round, three one-GET rounds, the full round that finds them
    assert join_gets([]) == 0 and join_gets([0.0]) == 1


def _chord_wait_one_by_one(body: float, parts: list[float], latency: float) -> int:
    """Celery's loop, spelled out part by part (AsyncResult.get with follow_parents, then
    backend.wait_for): check the parts in order, poll the body, check again, sleep."""
    from s3result.waits.polling import delays

    waits = delays(0.025, 0.5)
    pending, t, gets = list(parts), 0.0, 0

    def check() -> None:
        nonlocal pending, t, gets
        left = []
        for done in pending:
            gets += 1
            t += latency
            if done > t:
                left.append(done)
        pending = left

    check()
    while True:
        gets += 1
        t += latency
        if body <= t:
            return gets
        check()
        t += next(waits)


# Times in 1/1024 s: sums of them are exact in binary floating point, so the two ways of adding
# up a check's time (a run at once, or a GET at a time) cannot round apart at a tie.
_TICKS = st.integers(min_value=0, max_value=1100).map(lambda n: n / 1024)


@settings(max_examples=400, deadline=None)
@given(
    body=_TICKS,
    parts=st.lists(st.sampled_from([0, 10, 50, 100, 200, 300, 1000]).map(lambda n: n / 1024), max_size=30),
    latency=st.sampled_from([0, 1, 4, 10, 30, 200]).map(lambda n: n / 1024),
)
def test_chord_wait_counts_as_celery_reads_part_by_part(body: float, parts: list[float], latency: float) -> None:
    """The arithmetic groups parts that end together (a million equal parts is one run); it
    counts what the loop spelled out part by part counts, and that loop is Celery's."""
    assert chord_wait_gets(body, parts, latency=latency) == _chord_wait_one_by_one(body, parts, latency)


def test_chord_wait_reads_parts_in_the_groups_order() -> None:
    """A check reads parts one after the other in the group's order, so order counts: with
    0.3 s per GET, a part ready at 0.5 s read first is still pending, read second it is not."""
    assert chord_wait_gets(1.0, [0.5, 0.0], latency=0.3) > chord_wait_gets(1.0, [0.0, 0.5], latency=0.3)
    # A million parts that end together: one run, computed at once; every part read once
    # (the first check, at 20 ms a GET, outlasts them all), and the body's one poll.
    assert chord_wait_gets(5.0, [5.0] * 1_000_000, latency=0.02) == 1_000_001


def test_cost_of_a_billion_part_chord_is_quick_and_small() -> None:
    """Equal parts are one run: the arithmetic never builds a list of every part (review of issue 15:
    --chord-parts 100,000,000 took 9 s and 1,000,000,000 ended in MemoryError)."""
    import argparse
    import time
    import tracemalloc

    from s3result.cli.cost import per_task_from_args

    args = argparse.Namespace(
        track_started=False,
        retries_per_task=0.0,
        waited=1.0,
        task_seconds=1.0,
        interval=0.5,
        reads_per_task=0.0,
        latency=0.0,
        chord_parts=10**9,
        chord_cas_rounds=1.5,
        worker_concurrency=0,
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        per_task = per_task_from_args(args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 10_000_000, peak
    # As for a million parts: each check reads every part, all pending until they end together.
    args.chord_parts = 10**6
    assert per_task == per_task_from_args(args) or abs(per_task.gets - per_task_from_args(args).gets) < 1e-3


@pytest.mark.parametrize("duration", [0.0, 0.01, 0.02, 0.3, 5.0])
@pytest.mark.parametrize("latency", [0.0, 0.02, 0.2])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 20, 101])
def test_a_join_of_equal_members_counts_as_the_list_does(duration: float, latency: float, size: int) -> None:
    """``cost --group-size N`` never builds a list of N; it counts what ``join_gets`` counts."""
    from s3result.cli.cost import join_gets, join_gets_equal

    assert join_gets_equal(duration, size, latency=latency) == join_gets([duration] * size, latency=latency)


@pytest.mark.parametrize("latency", [5e-324, 1e-320, 1e-300])
def test_a_chord_at_a_vanishing_latency_counts_as_at_none(latency: float) -> None:
    """A part's reads ahead of its end, (end - now) / latency, overflow a float when a GET takes
    next to no time: ``cost --latency 1e-320 --chord-parts 5`` ended in "unexpected OverflowError"."""
    from s3result.cli.cost import chord_wait_gets

    assert chord_wait_gets(5.0, [5.0] * 3, latency=latency) == chord_wait_gets(5.0, [5.0] * 3, latency=0.0)
    far = chord_wait_gets(1e300, [1e300] * 3, interval=1e300, latency=latency)
    assert far == chord_wait_gets(1e300, [1e300] * 3, interval=1e300, latency=0.0)


def test_waves_of_a_group_or_chord() -> None:
    """Workers take a group's tasks in order, so many at a time: they are done in waves."""
    from s3result.cli.cost import MAX_WAVES, waves

    assert waves(10, 0, 1.0) == [[1.0, 10]]  # all at once
    assert waves(10, 20, 1.0) == [[1.0, 10]]
    assert waves(10, 4, 0.5) == [[0.5, 4], [1.0, 4], [1.5, 2]]
    assert sum(n for _, n in waves(1_000_000, 100, 1.0)) == 1_000_000
    with pytest.raises(ValueError, match="waves"):
        waves(MAX_WAVES * 4 + 1, 4, 1.0)


def test_a_join_in_waves_counts_as_the_list_does() -> None:
    """Above 100,000 members ``cost`` counts a join in waves as one of equal members done with
    the last wave: the same count as the member-by-member list, while a task outlasts a read."""
    from s3result.cli.cost import join_gets, join_gets_equal, waves

    for size, concurrency in ((50, 7), (1000, 100), (3000, 1000)):
        runs = waves(size, concurrency, 1.0)
        listed = join_gets([done for done, n in runs for _ in range(int(n))], latency=0.02)
        assert join_gets_equal(runs[-1][0], size, latency=0.02) == listed


@pytest.mark.parametrize(("parts", "concurrency"), [(20, 4), (100, 7), (300, 16), (50, 1)])
@pytest.mark.parametrize("latency", [0.0, 1 / 1024, 10 / 1024, 0.25])
def test_a_chord_in_waves_counts_as_celery_reads_part_by_part(parts: int, concurrency: int, latency: float) -> None:
    """Waves come in order of their end, and the arithmetic then skips the runs that cannot end
    within a check (``cost --worker-concurrency``): the count stays the part-by-part loop's."""
    from s3result.cli.cost import POLL_BACKOFF, POLL_FIRST_DELAY, _chord_wait_runs, waves

    runs = waves(parts, concurrency, 0.5)
    listed = [done for done, n in runs for _ in range(int(n))]
    body = runs[-1][0]
    expected = _chord_wait_one_by_one(body, listed, latency)
    assert _chord_wait_runs(body, runs, 0.5, POLL_FIRST_DELAY, POLL_BACKOFF, latency)[0] == expected


def test_cost_counts_the_tree_the_producer_fits() -> None:
    """``cost``'s chord is the runtime's: a tree from ``chord_tree_from`` parts, of the shape
    ``Geometry.fit`` gives, its join from the root's state where the nodes' slots travel there."""
    from s3result.backend import S3Backend
    from s3result.chords.geometry import Geometry
    from s3result.cli.cost import CHORD_TREE_FROM, chord_requests

    assert CHORD_TREE_FROM == S3Backend.chord_tree_from
    # 10 parts: 3 leaves under the root. With no race lost: the producer's 2 counter PUTs, a PUT per
    # part in its leaf and one per leaf in the root (15); a GET before each but the counter's
    # creation and the 3 leaves' (their first parts create them), the group's; 5 DELETEs.
    assert [len(level) for level in Geometry.fit(10).levels] == [3, 1]
    assert chord_requests(10, cas_rounds=15 / 10) == Requests(puts=1 + 15, gets=15 - 1 - 3 + 1, deletes=2 + 3)
    # 200 parts: 31 leaves, 4 inner nodes; the root's children are too big to travel into it, so
    # the join reads the 4 inner nodes.
    assert [len(level) for level in Geometry.fit(200).levels] == [31, 4, 1]
    rounds = 2 + 200 + 31 + 4
    assert chord_requests(200, cas_rounds=rounds / 200) == Requests(
        puts=1 + rounds, gets=rounds - 1 - 31 + 1 + 4, deletes=2 + 31 + 4
    )
    assert chord_requests(1, cas_rounds=1.0).deletes == 2  # one part: the counter alone


def _chord_wait_sent_here(body: float, parts: list[float], latency: float) -> int:
    """Celery's loop in the process that sent the chord, spelled out with the real ``ReadAhead``
    on a clock of its own: the check before the wait is a pass (``in_pass``), the checks while
    waiting read as ``waits`` does (``take``, then a window of the header), batches concurrently."""
    import math

    from s3result.cli.cost import READ_CONCURRENCY
    from s3result.waits.polling import delays
    from s3result.waits.readahead import ReadAhead

    now = {"t": 0.0, "gets": 0}
    ahead = ReadAhead(clock=lambda: now["t"])
    ids = [f"p{i}" for i in range(len(parts))]
    ahead.remember("g", ids)
    done = dict(zip(ids, parts, strict=True))
    ready: set[str] = set()  # cached by Celery (AsyncResult) and the backend (a success)

    def answer(i: str) -> dict[str, str]:
        return {"status": "SUCCESS" if done[i] <= now["t"] else "PENDING"}

    def one(i: str) -> dict[str, str]:
        now["gets"] += 1
        now["t"] += latency
        return answer(i)

    def many(batch: list[str]) -> dict[str, dict[str, str]]:
        now["gets"] += len(batch)
        now["t"] += latency * math.ceil(len(batch) / READ_CONCURRENCY)
        return {i: answer(i) for i in batch}

    def read_waiting(i: str) -> dict[str, str]:
        meta = ahead.take(i)
        if meta is None:
            window = ahead.window(i, skip=ready.__contains__)
            if len(window) > 1:
                ahead.keep(many(window))
                meta = ahead.take(i)
        return meta if meta is not None else one(i)

    def check(first: bool) -> None:
        for i in ids:
            if i not in ready:
                meta = ahead.in_pass(i, one, many, ready.__contains__) if first else read_waiting(i)
                if meta["status"] == "SUCCESS":
                    ready.add(i)

    waits = delays(0.025, 0.5)
    check(True)
    while True:
        now["gets"] += 1
        now["t"] += latency
        if body <= now["t"]:
            return now["gets"]
        check(False)
        now["t"] += next(waits)


@pytest.mark.parametrize(
    ("body", "parts", "latency"),
    [
        (0.3, [0.1, 0.6], 0.0),
        (2.0, [1.5] * 10, 0.02),
        (3.0, [0.05 * i for i in range(40)], 0.02),
        (12.0, [20.0] * 200, 0.02),
        (1.0, [0.0] * 100 + [0.9] * 20, 0.01),
        (6.0, [5.5] * 250, 0.0),
    ],
)
def test_the_sender_s_chord_wait_counts_as_its_read_ahead_reads(
    body: float, parts: list[float], latency: float
) -> None:
    """``cost``'s arithmetic for the process that sent the chord follows ``readahead`` itself."""
    from s3result.cli.cost import chord_wait_batched

    assert chord_wait_batched(body, parts, latency=latency)[0] == _chord_wait_sent_here(body, parts, latency)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from([0, 10, 100, 500, 1000, 3000]).map(lambda n: n / 1000), min_size=1, max_size=80),
    extra=st.sampled_from([0, 50, 500]).map(lambda n: n / 1000),
    latency=st.sampled_from([0, 1, 20, 100]).map(lambda n: n / 1000),
)
def test_the_sender_s_chord_wait_follows_its_read_ahead(parts: list[float], extra: float, latency: float) -> None:
    """Up to ``readahead.WINDOW`` parts (a larger header is read in windows, one batch in the
    arithmetic), for any parts' ends: the arithmetic counts what ``ReadAhead`` makes Celery read."""
    from s3result.cli.cost import chord_wait_batched

    body = max(parts) + extra
    assert chord_wait_batched(body, parts, latency=latency)[0] == _chord_wait_sent_here(body, parts, latency)
