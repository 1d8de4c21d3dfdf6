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


class Store:
    """Reads counted: ``one`` alone, ``many`` by batch (their sizes in order)."""

    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.states = states or {}
        self.alone: list[str] = []
        self.batches: list[list[str]] = []

    def meta(self, task_id: str) -> dict[str, str]:
        return {"status": self.states.get(task_id, "PENDING")}

    def one(self, task_id: str) -> dict[str, str]:
        self.alone.append(task_id)
        return self.meta(task_id)

    def many(self, ids: list[str]) -> dict[str, dict[str, str]]:
        self.batches.append(list(ids))
        return {i: self.meta(i) for i in ids}


def _pass(ahead: ReadAhead, store: Store, ids: list[str], skip: frozenset[str] = frozenset()) -> list[str]:
    return [ahead.in_pass(i, store.one, store.many, skip.__contains__)["status"] for i in ids]


def test_a_pass_reads_ahead_as_many_as_it_has_read_at_most_ahead() -> None:
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(300)]
    ahead.remember("g", ids)
    store = Store()
    assert _pass(ahead, store, ids) == ["PENDING"] * 300
    assert store.alone == ["t0"]
    sizes = [len(b) for b in store.batches]
    assert sizes[:7] == [1, 2, 4, 8, 16, 32, readahead.AHEAD], sizes
    assert sum(sizes) == 299 and max(sizes) == readahead.AHEAD
    assert [i for b in store.batches for i in b] == ids[1:]  # each id read once, in order


def test_a_pass_skips_what_the_caller_knows_already() -> None:
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(10)]
    ahead.remember("g", ids)
    store = Store()
    known = frozenset({"t2", "t3"})
    _pass(ahead, store, [i for i in ids if i not in known], known)
    assert "t2" not in [i for b in store.batches for i in b]
    assert store.alone == ["t0"]  # t4 comes right after t1, less what is known: the same pass


def test_a_loop_on_one_part_reads_that_part_alone() -> None:
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(100)]
    ahead.remember("g", ids)
    store = Store()
    for _ in range(20):
        _pass(ahead, store, ["t5"])
    assert store.alone == ["t5"] * 20 and store.batches == []
    for _ in range(5):  # a loop over two parts: never more than twice what it reads
        _pass(ahead, store, ["t0", "t1"])
    assert len(store.alone) + sum(len(b) for b in store.batches) <= 20 + 2 * 10


def test_an_answer_read_ahead_serves_its_pass_once_and_only_in_order() -> None:
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(10)]
    ahead.remember("g", ids)
    store = Store()
    _pass(ahead, store, ["t0", "t1", "t2"])  # t2 read t2 and t3 ahead
    assert store.batches[-1] == ["t2", "t3"]
    store.states["t3"] = "FAILURE"
    assert _pass(ahead, store, ["t1", "t3"]) == ["PENDING", "FAILURE"]  # out of order: the store's
    assert store.alone[-2:] == ["t1", "t3"]


def test_a_failed_answer_ends_what_the_pass_read_ahead() -> None:
    """Celery's check raises at a failed part: what its pass read ahead serves no later read."""
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(10)]
    ahead.remember("g", ids)
    store = Store({"t5": "FAILURE"})
    assert _pass(ahead, store, ids[:6]) == ["PENDING"] * 5 + ["FAILURE"]
    assert store.batches[-1] == ["t4", "t5", "t6", "t7"]  # t6 and t7 read ahead, as pending
    store.states["t6"] = "FAILURE"
    assert _pass(ahead, store, ["t6"]) == ["FAILURE"]  # right after t5, yet read again
    assert store.batches[-1][0] == "t6"


def test_an_answer_read_ahead_is_read_again_after_fresh() -> None:
    clock = Clock()
    ahead = ReadAhead(clock=clock)
    ids = [f"t{i}" for i in range(10)]
    ahead.remember("g", ids)
    store = Store()
    _pass(ahead, store, ["t0", "t1", "t2"])  # t2 and t3 read
    clock.now += readahead.FRESH + 0.01
    store.states["t3"] = "FAILURE"
    assert _pass(ahead, store, ["t3"]) == ["FAILURE"]
    assert store.batches[-1][0] == "t3"


def test_a_pass_is_the_thread_s_own() -> None:
    import threading

    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(10)]
    ahead.remember("g", ids)
    store = Store()
    _pass(ahead, store, ["t0", "t1", "t2"])  # this thread read t3 ahead
    store.states["t3"] = "FAILURE"
    seen: list[str] = []
    other = threading.Thread(target=lambda: seen.extend(_pass(ahead, store, ["t3"])))
    other.start()
    other.join()
    assert seen == ["FAILURE"]


def test_a_pass_s_pending_answers_stand_for_the_checks_while_waiting() -> None:
    """The check before the wait read the header: the first check while waiting reads none of it."""
    ahead = ReadAhead()
    ids = [f"t{i}" for i in range(300)]
    ahead.remember("g", ids)
    store = Store({"t7": "SUCCESS"})
    _pass(ahead, store, ids)
    assert ahead.take("t0") == {"status": "PENDING"}
    assert ahead.take("t299") == {"status": "PENDING"}
    assert ahead.take("t7") is None  # a ready one is Celery's to keep


def test_ids_of_no_header_sent_here_are_read_alone() -> None:
    ahead = ReadAhead()
    store = Store()
    _pass(ahead, store, ["x", "y", "z"])
    assert store.alone == ["x", "y", "z"] and store.batches == []


def test_a_steady_pass_keeps_its_batch_until_its_oldest_answer_is_stalest() -> None:
    """On a loaded machine Celery's check may take more than ``FRESH`` over a batch: a pass that
    goes on steadily (each read within ``FRESH`` of the one before) uses what it read ahead, up to
    ``STALEST`` after reading it (it read each batch twice under load, as the first expired)."""
    clock = Clock()
    ahead = ReadAhead(clock=clock)
    ids = [f"t{i}" for i in range(16)]
    ahead.remember("g", ids)
    store = Store()
    for task_id in ids[:8]:  # t0 alone, then batches of 1, 2, 4: t1..t7
        _pass(ahead, store, [task_id])
    step = readahead.FRESH * 0.8
    for task_id in ids[8:15]:  # t8 reads t8..t15; each next read within FRESH, the batch < STALEST
        clock.now += step
        _pass(ahead, store, [task_id])
    assert [i for b in store.batches for i in b] == ids[1:16], store.batches  # each read once
    clock.now += readahead.STALEST  # the batch's last answer is too old: read again
    _pass(ahead, store, ["t15"])
    assert store.batches[-1][0] == "t15"
