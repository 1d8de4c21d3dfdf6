"""The compare-and-swap loop (s3result/results/cas.py) without a network: back-off, deadline, refusals.

On real stores: tests/integration/test_cas.py (Ceph refusing If-Match), the counters' tests.
"""

from __future__ import annotations

import pytest

from s3result.errors import Conflict, NotImplementedByStore, PreconditionFailed, ServerError
from s3result.results import cas


def _refused() -> PreconditionFailed:
    return PreconditionFailed(status=412, key="k", method="PUT")


def test_refusals_of_the_etag_just_read_name_the_store() -> None:
    writes: list[int] = []

    def attempt(state: cas.Attempt) -> None:
        state.read('"same"')  # nobody else ever writes: the store refuses its own ETag
        writes.append(state.number)
        raise _refused()

    with pytest.raises(NotImplementedByStore, match="does not honour If-Match") as raised:
        cas.compare_and_swap("k", attempt, deadline_s=60, sleep=lambda s: None)
    assert "conditional_writes=probe" in str(raised.value) and raised.value.key == "k"
    assert writes == list(range(1, cas.REFUSALS + 1))


def test_lost_races_against_other_writers_are_retried_until_won() -> None:
    def attempt(state: cas.Attempt) -> int:
        state.read(f'"v{state.number}"')  # another writer changed it every time
        if state.number < 20:
            raise _refused()
        return state.number

    pauses: list[float] = []
    assert cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append) == 20
    assert len(pauses) == 19 and max(pauses) <= cas.MAX_PAUSE_S


def test_a_create_that_loses_is_no_refusal() -> None:
    def attempt(state: cas.Attempt) -> int:
        state.read(None)  # missing, then created by another writer: If-None-Match lost
        if state.number < 10:
            raise _refused()
        return 1

    assert cas.compare_and_swap("k", attempt, deadline_s=60, sleep=lambda s: None) == 1


def test_past_the_deadline_the_store_error_or_the_races_are_named() -> None:
    def failing(state: cas.Attempt) -> None:
        raise ServerError(status=503, code="SlowDown", key="k", method="PUT")

    with pytest.raises(ServerError) as raised:
        cas.compare_and_swap("k", failing, deadline_s=0, sleep=lambda s: None)
    assert isinstance(raised.value.__cause__, Conflict)

    def racing(state: cas.Attempt) -> None:
        state.read(f'"v{state.number}"')
        raise _refused()

    with pytest.raises(Conflict, match="still losing to concurrent writers"):
        cas.compare_and_swap("k", racing, deadline_s=0, sleep=lambda s: None)


def test_store_errors_are_raised_at_once_when_the_caller_says_so() -> None:
    def failing(state: cas.Attempt) -> None:
        raise ServerError(status=503, code="SlowDown", key="k", method="PUT")

    with pytest.raises(ServerError):
        cas.compare_and_swap("k", failing, deadline_s=60, store_errors=False, sleep=lambda s: None)


def test_the_back_off_base_is_the_lost_attempts_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])

    def attempt(state: cas.Attempt) -> int:
        clock[0] += 0.04  # a read and a write 20 ms away
        state.read(f'"v{state.number}"')
        if state.number < 4:
            raise _refused()
        return 0

    pauses: list[float] = []
    cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append)
    assert len(pauses) == 3 and all(p <= 0.04 * 2**i + 1e-9 for i, p in enumerate(pauses)), pauses


def test_losers_that_know_their_turn_wait_for_the_writers_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Attempt.ahead``: a loser with k writers ahead of it waits k lost attempts' time (plus up
    to half of one), so the losers of one race come back in turn instead of racing again."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])

    def losing_with(ahead: int | None) -> list[float]:
        def attempt(state: cas.Attempt) -> int:
            clock[0] += 0.04  # a read and a write 20 ms away
            state.read(f'"v{state.number}"')
            state.ahead = ahead
            if state.number < 3:
                raise _refused()
            return 0

        pauses: list[float] = []
        cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append)
        return pauses

    for ahead in (0, 1, 3, cas.MAX_AHEAD + 5):
        turns = min(ahead, cas.MAX_AHEAD)
        assert all(0.04 * turns <= p <= 0.04 * (turns + 0.5) + 1e-9 for p in losing_with(ahead)), ahead
    assert all(p <= 0.04 * 2**i + 1e-9 for i, p in enumerate(losing_with(None)))  # unknown: full jitter


def test_a_store_error_is_retried_with_jitter_even_when_the_turn_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost reply is no race: the turn does not apply, the loop reads again after the jitter."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])

    def attempt(state: cas.Attempt) -> int:
        clock[0] += 0.04
        state.ahead = 8
        if state.number < 2:
            raise ServerError(status=503, code="SlowDown", key="k", method="PUT")
        return 0

    pauses: list[float] = []
    cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append)
    assert len(pauses) == 1 and pauses[0] <= 0.04 + 1e-9


def test_a_turn_lasts_at_most_the_longest_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a store that answers in seconds, waiting for 8 writers ahead must not take 8 answers' time."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])

    def attempt(state: cas.Attempt) -> int:
        clock[0] += 3.0
        state.read(f'"v{state.number}"')
        state.ahead = 8
        if state.number < 2:
            raise _refused()
        return 0

    pauses: list[float] = []
    cas.compare_and_swap("k", attempt, deadline_s=600, sleep=pauses.append)
    assert len(pauses) == 1 and pauses[0] <= cas.MAX_PAUSE_S * (cas.MAX_AHEAD + 0.5) + 1e-9, pauses


def test_an_attempt_that_yields_writes_nothing_and_waits_a_read_and_a_write_per_writer_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Yielded``: the attempt read (20 ms) and saw writers due before it; each of their turns is
    a read and a write, twice its own time."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])
    writes: list[int] = []

    def attempt(state: cas.Attempt) -> int:
        clock[0] += 0.02
        state.read(None)
        if state.number == 1:
            state.ahead, state.turn = 2, 2.0
            raise cas.Yielded("k")
        writes.append(state.number)
        return state.number

    pauses: list[float] = []
    assert cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append) == 2
    assert writes == [2]
    assert len(pauses) == 1 and 0.08 <= pauses[0] <= 0.08 + 0.5 * 0.02 * 2 + 1e-9, pauses
    assert cas.lost_race(cas.Yielded("k"))


def test_an_attempt_that_yielded_past_the_deadline_still_gets_its_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A yield wrote nothing, so it lost no race: when its read outlived the deadline (a store that
    hung, then answered 404), the write it yielded is owed, not a Conflict blaming concurrent writers."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])
    writes: list[int] = []

    def attempt(state: cas.Attempt) -> int:
        if state.number == 1:
            clock[0] += 130.0  # the read: the client's retries against a store that did not answer
            state.read(None)
            state.ahead, state.turn = 2, 2.0
            raise cas.Yielded("k")
        clock[0] += 0.02
        state.read(None)
        writes.append(state.number)
        return state.number

    assert cas.compare_and_swap("k", attempt, deadline_s=120, sleep=lambda s: None) == 2
    assert writes == [2]


def test_a_yield_s_double_turn_does_not_outlive_the_attempt_that_yielded(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Attempt.turn`` is 2 after a read alone; the next attempt reads and writes: a loss of it
    waits one attempt's time per writer ahead, as any loser does, not twice that."""
    clock = [0.0]
    monkeypatch.setattr(cas.time, "monotonic", lambda: clock[0])

    def attempt(state: cas.Attempt) -> int:
        clock[0] += 0.02
        state.read(None if state.number == 1 else f'"{state.number}"')
        state.ahead = 2
        if state.number == 1:
            state.turn = 2.0
            raise cas.Yielded("k")
        if state.number == 2:
            raise _refused()  # a read and a write, lost
        return state.number

    pauses: list[float] = []
    assert cas.compare_and_swap("k", attempt, deadline_s=60, sleep=pauses.append) == 3
    assert len(pauses) == 2
    assert 0.04 <= pauses[1] <= 0.04 + 0.5 * 0.02 * 2 + 1e-9, pauses
