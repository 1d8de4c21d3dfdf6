"""Pure logic of ``readahead`` (integration: tests/integration/test_readahead.py)."""

from __future__ import annotations

from s3result import readahead
from s3result.readahead import ReadAhead


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


def test_a_batch_answers_once_and_only_while_fresh() -> None:
    clock = Clock()
    ahead = ReadAhead(clock=clock)
    ahead.remember("g", ["a", "b"])
    ahead.keep({"a": {"status": "PENDING"}, "b": {"status": "FAILURE"}})
    assert ahead.take("a") == {"status": "PENDING"}
    assert ahead.take("a") is None  # once: the next pass reads the store again
    clock.now += readahead.FRESH + 0.01
    assert ahead.take("b") is None  # stale: a later poll's check reads the store


def test_old_headers_are_forgotten() -> None:
    ahead = ReadAhead()
    for n in range(readahead.HEADERS + 1):
        ahead.remember(f"g{n}", [f"g{n}-a", f"g{n}-b"])
    assert ahead.window("g0-a", skip=lambda i: False) == []
    assert ahead.window(f"g{readahead.HEADERS}-a", skip=lambda i: False) == [
        f"g{readahead.HEADERS}-a",
        f"g{readahead.HEADERS}-b",
    ]
