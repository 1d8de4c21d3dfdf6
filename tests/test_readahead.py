"""Pure logic of ``readahead`` (integration: tests/integration/test_readahead.py)."""

from __future__ import annotations

from s3result.waits import readahead
from s3result.waits.readahead import ReadAhead


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_is_the_id_and_the_next_of_its_header_less_the_skipped() -> None:
    ahead = ReadAhead()
    ahead.remember("g", ["a", "b", "c", "d"])
    assert ahead.window("b", skip=lambda i: i == "c") == ["b", "d"]
    assert ahead.window("unknown", skip=lambda i: False) == []


def test_a_window_holds_at_most_window_ids() -> None:
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(readahead.WINDOW * 2)]
    ahead.remember("g", ids)
    assert ahead.window("t0", skip=lambda i: False) == ids[: readahead.WINDOW]


def test_a_ready_result_answers_once_a_pending_one_while_it_stands() -> None:
    clock = Clock()
    ahead = ReadAhead(clock=clock)
    ahead.remember("g", ["a", "b"])
    ahead.keep({"a": {"status": "PENDING"}, "b": {"status": "FAILURE"}})
    assert ahead.take("b") == {"status": "FAILURE"}
    assert ahead.take("b") is None  # once: Celery caches what it keeps itself
    assert ahead.take("a") == {"status": "PENDING"}
    assert ahead.take("a") == {"status": "PENDING"}  # the next poll's check reads no GET for it
    clock.now += readahead.FRESH + 0.01
    assert ahead.take("a") is None  # stale: the next check reads the store


def test_a_large_batch_stands_longer_at_most_patience() -> None:
    clock = Clock()
    ahead = ReadAhead(clock=clock)
    ids = [f"t{i}" for i in range(readahead.WINDOW)]
    ahead.keep(dict.fromkeys(ids, {"status": "PENDING"}))
    stands = min(readahead.WINDOW / readahead.RATE, readahead.PATIENCE)
    clock.now += stands - 0.01
    assert ahead.take("t0") == {"status": "PENDING"}
    clock.now += 0.02
    assert ahead.take("t0") is None


def test_a_failed_body_drops_every_pending_answer() -> None:
    ahead = ReadAhead()
    ahead.keep({"a": {"status": "PENDING"}})
    ahead.forget_pending()
    assert ahead.take("a") is None


def test_old_headers_are_forgotten() -> None:
    ahead = ReadAhead()
    for n in range(readahead.HEADERS + 1):
        ahead.remember(f"g{n}", [f"g{n}-a", f"g{n}-b"])
    assert ahead.window("g0-a", skip=lambda i: False) == []
    assert ahead.window(f"g{readahead.HEADERS}-a", skip=lambda i: False) == [
        f"g{readahead.HEADERS}-a",
        f"g{readahead.HEADERS}-b",
    ]
