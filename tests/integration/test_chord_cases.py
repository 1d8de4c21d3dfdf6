"""Issue 17's chord cases, each with the fault that broke it, on a real moto server.

Producers and workers are separate Celery apps (separate backends, settings and, where a
case needs it, a separate address, so they do not share one process's commit queue); header
parts finish through ``mark_as_done`` as Celery's trace does, and the body's publishing is
recorded instead of sent. The same cases with real worker processes are in
tests/e2e/test_chord_shapes.py and tests/e2e/test_chords.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from celery import Celery, group, states
from celery.app.task import Context
from celery.canvas import Signature

from s3result.errors import RequestTimeout
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer

_apps = itertools.count()


def make_app(url: str, conditional_writes: str = "probe", **options: Any) -> Celery:
    """An app standing for one process (a producer, a worker) of a test run in one process.

    Clients are one per process and settings (s3result/results/clients.py): each app gets settings of
    its own (its pool size) and so a client of its own, as separate processes would have.
    """
    app = Celery("cases", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    options.setdefault("max_connections", 100 + next(_apps) % 900)
    app.conf.s3result_options = {"conditional_writes": conditional_writes, **options}

    @app.task(name="tsum", shared=False)
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task(name="add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    return app


class Chord:
    """A chord applied by ``producer``: its parts' requests, and what got published."""

    def __init__(self, producer: Celery, size: int, gid: str, tree_from: int = 10**9) -> None:
        """``tree_from``: the producer's ``chord_tree_from``; by default these small chords count in
        the root counter (a header with a nested group, or an older producer, counts there)."""
        producer.backend.chords.tree_from = tree_from
        self.fired: list[Any] = []
        self.unlocks: list[Any] = []
        self.body = producer.tasks["tsum"].s()
        self.body.freeze()
        header = group(producer.tasks["add"].s(i, i) for i in range(size))
        header.options["task_id"] = gid
        self.args = header._freeze_group_tasks(group_id=gid, chord=self.body)
        self.gid = gid
        self.producer = producer
        with self.recording():
            producer.backend.apply_chord(self.args, self.body)
            # What Celery's group does before publishing the last part.
            producer.backend.set_chord_size(gid, size)
        self.requests = [
            Context(id=r.id, group=gid, group_index=i, chord=dict(self.body), children=[], errbacks=None, chain=None)
            for i, r in enumerate(self.args[1])
        ]

    def recording(self) -> Any:
        fired, unlocks = self.fired, self.unlocks

        class Both:
            def __enter__(self) -> None:
                self.a = mock.patch.object(Signature, "delay", lambda sig, *a, **k: fired.append(a))
                self.b = mock.patch.object(
                    Celery, "send_task", lambda app, name, *a, **k: unlocks.append(name) if "unlock" in name else None
                )
                self.a.start()
                self.b.start()

            def __exit__(self, *exc: object) -> None:
                self.a.stop()
                self.b.stop()

        return Both()

    def finish(self, worker: Celery, i: int) -> None:
        """Part ``i`` finishes on ``worker`` as Celery's trace does it (failure path included)."""
        req = self.requests[i]
        with self.recording():
            try:
                worker.backend.mark_as_done(req.id, 2 * i, request=req)
            except Exception as exc:  # noqa: BLE001 - what trace.py's on_error does next
                worker.backend.mark_as_failure(req.id, exc, request=req)

    def body_meta(self, app: Celery) -> dict[str, Any]:
        return dict(app.backend.get_task_meta(self.body.id, cache=False))


@pytest.fixture
def store(moto_server: MotoServer) -> MotoServer:
    return moto_server


def lossy(app: Celery, when: Any) -> None:
    """Make ``app``'s transport apply each request, then call ``when``; it may raise (reply lost)."""
    client = app.backend.client
    assert client.pool.slot is None, "make the transport lossy before its first use"
    factory = client.pool.factory

    class Lossy:
        def __init__(self, base: str) -> None:
            self.inner = factory(base)

        def request(self, method: bytes, target: bytes, headers: Any, body: bytes, **kw: Any) -> Any:
            resp = self.inner.request(method, target, headers, body, **kw)
            when(method, target, headers)
            return resp

        def close(self) -> None:
            self.inner.close()

    client.pool.factory = Lossy


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[CountingProxy]:
    p = CountingProxy(moto_server.host, moto_server.port)
    yield p
    p.close()


def _via(url: str, store: MotoServer, proxy: CountingProxy) -> str:
    return url.replace(f":{store.port}/", f":{proxy.port}/")


def test_case1_lost_reply_with_another_writer_counts_once(store: MotoServer, proxy: CountingProxy) -> None:
    """Part B's counter PUT lands, its reply is lost, part C counts meanwhile: fired once, at the end."""
    url = store.url("case1")
    producer, mine, other = make_app(url), make_app(url), make_app(_via(url, store, proxy))
    chord = Chord(producer, 4, "g-case1")
    armed = {"on": False}

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if armed["on"] and method == b"PUT" and b"chord-unlock" in target:
            if any(k.lower() == b"if-match" for k, _ in headers):
                armed["on"] = False
                chord.finish(other, 2)  # another process counts right after ours landed
                raise RequestTimeout("reply lost (test)")

    lossy(mine, when)
    chord.finish(mine, 0)
    armed["on"] = True
    chord.finish(mine, 1)
    assert not armed["on"]
    assert chord.fired == [], "fired before the last part"
    chord.finish(mine, 3)
    assert chord.fired == [([0, 2, 4, 6],)]
    assert chord.body_meta(producer)["status"] == states.PENDING  # published, not failed


def test_case2_every_reply_of_last_count_lost_still_fires_once(store: MotoServer) -> None:
    url = store.url("case2")
    producer, worker = make_app(url), make_app(url, max_attempts=2)
    chord = Chord(producer, 3, "g-case2")
    armed = {"on": False}

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if armed["on"] and method == b"PUT" and b"chord-unlock" in target:
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    chord.finish(worker, 0)
    chord.finish(worker, 1)
    armed["on"] = True
    chord.finish(worker, 2)  # and, as Celery's trace does on an error, mark_as_failure
    assert chord.fired == [([0, 2, 4],)]
    assert store_has(worker, "case2/chord-unlock-g-case2") is False


def store_has(app: Celery, key: str) -> bool:
    return app.backend.client.get_or_none(key) is not None


COMBOS = [(p, w) for p in ("disabled", "probe", "etag") for w in ("disabled", "probe", "etag")]


@pytest.mark.parametrize(("producer_cw", "worker_cw"), COMBOS)
def test_case3_producer_decides_once(store: MotoServer, producer_cw: str, worker_cw: str) -> None:
    """Every mix of settings: fired once, or chord_unlock once, or FAILURE naming the setting."""
    url = store.url(f"case3-{producer_cw}-{worker_cw}")
    producer, worker = make_app(url, producer_cw), make_app(url, worker_cw)
    chord = Chord(producer, 3, f"g-case3-{producer_cw}-{worker_cw}")
    for i in range(3):
        chord.finish(worker, i)
    meta = chord.body_meta(producer)
    if producer_cw == "disabled":
        assert chord.unlocks == ["celery.chord_unlock"]
        assert chord.fired == []
        assert meta["status"] == states.PENDING
    elif worker_cw == "disabled":
        assert chord.fired == []
        assert meta["status"] == states.FAILURE
        assert "conditional_writes" in str(meta["result"])
    else:
        assert chord.fired == [([0, 2, 4],)]
        assert chord.unlocks == []


def test_case4_failure_to_count_fails_the_body_loudly(store: MotoServer) -> None:
    url = store.url("case4")
    producer, worker = make_app(url), make_app(url, max_attempts=1)
    chord = Chord(producer, 2, "g-case4")
    worker.backend.store.cas_deadline = 0.5
    worker.backend.chords.counter.deadline_s = 0.5
    armed = {"on": False}

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if armed["on"] and b"chord-unlock" in target and method in (b"GET", b"PUT"):
            raise RequestTimeout("store gone (test)")

    lossy(worker, when)
    chord.finish(worker, 0)
    armed["on"] = True
    chord.finish(worker, 1)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "ChordError" in type(meta["result"]).__name__ or "counting" in str(meta["result"])
    assert chord.fired == []


def test_case6_late_or_redelivered_part_leaves_nothing(store: MotoServer) -> None:
    url = store.url("case6")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, "g-case6")
    for i in range(3):
        chord.finish(worker, i)
    assert len(chord.fired) == 1
    chord.finish(worker, 1)  # redelivered after the chord finished
    chord.finish(worker, 2)  # the completing part, redelivered
    assert len(chord.fired) == 1
    assert not store_has(worker, "case6/chord-unlock-g-case6")


def test_redelivered_completing_part_fires_after_lease_when_first_run_died(store: MotoServer) -> None:
    """The completing run counted, then died before publishing: its redelivery fires, once."""
    url = store.url("lease")
    producer, worker, again = make_app(url), make_app(url), make_app(url)
    chord = Chord(producer, 2, "g-lease")
    chord.finish(worker, 0)
    with mock.patch.object(worker.backend.chords.firing, "fire", lambda *a, **k: None):
        chord.finish(worker, 1)  # counted and completed, then "killed" before publishing
    assert chord.fired == []
    again.backend.chords.counter.lease_s = 0.5
    chord.finish(again, 1)
    assert chord.fired == [([0, 2],)]
    chord.finish(again, 1)
    assert len(chord.fired) == 1


def test_probe_verdict_survives_lost_replies(store: MotoServer) -> None:
    """Half the conditional PUTs' replies lost: the probe recognises its own writes, so a worker
    behind a lossy network reaches the producer's verdict instead of failing native chords.
    (When every retry's reply is lost too, the probe raises: never a verdict from a guess.)"""
    from s3result.errors import TransportError
    from s3result.results.config import build
    from s3result.results.precondition import probe
    from s3result.s3.client import S3Client
    from s3result.testing.faults import FaultProxy

    verdicts = []
    for seed in range(8):
        lossy_proxy = FaultProxy(store.host, store.port, seed=seed)
        lossy_proxy.set_faults(lose_conditional_reply=0.5)
        try:
            url = store.url("probe").replace(f":{store.port}/", f":{lossy_proxy.port}/")
            try:
                verdicts.append(probe(S3Client(build(url=url, environ={}).s3), "probe"))
            except TransportError:
                continue
        finally:
            lossy_proxy.close()
    assert len(verdicts) >= 4, verdicts
    assert all(v.ok for v in verdicts), [v.reason for v in verdicts]


def test_join_timeout_bounds_waiting_not_reading(store: MotoServer) -> None:
    """Every part is counted, so every result is stored: a join timeout shorter than the time
    the reads take (1,000 results on a busy store take seconds) must not fail the chord."""
    url = store.url("jointimeout")
    producer, worker = make_app(url), make_app(url)
    worker.conf.result_chord_join_timeout = 0.0001
    chord = Chord(producer, 40, "g-jointimeout")
    for i in range(40):
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(40)],)]
    assert chord.body_meta(producer)["status"] == states.PENDING  # published, not failed


def test_the_firing_part_joins_from_the_counter_it_wrote(store: MotoServer) -> None:
    """The part that completes a root counter has the complete state in hand (the body it wrote):
    its whole run reads the counter once, for its count, and the join reads only the saved group."""
    proxy = CountingProxy(store.host, store.port, record_times=True)
    try:
        url = store.url("fire-state")
        producer, worker, last = make_app(url), make_app(url), make_app(_via(url, store, proxy))
        assert last.backend.native_chords  # probed before the chord, as in a running worker
        chord = Chord(producer, 5, "g-fire-state")
        for i in range(4):
            chord.finish(worker, i)
        start = len(proxy.requests)
        chord.finish(last, 4)
        assert chord.fired == [([0, 2, 4, 6, 8],)]
        on_counter = [method for _t, method, target in proxy.requests[start:] if "chord-unlock-g-fire-state" in target]
        assert on_counter == ["GET", "PUT", "DELETE"], proxy.requests[start:]
    finally:
        proxy.close()
