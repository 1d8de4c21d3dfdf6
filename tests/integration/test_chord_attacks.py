"""Review attacks on issue 17's native chords (lost replies at the remaining steps, cleanup
failures, 1,000-part counters), each on a real moto server in the style of test_chord_cases."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from celery import states
from celery.canvas import Signature

from s3result.errors import RequestTimeout
from s3result.testing.store import MotoServer

from .test_chord_cases import Chord, lossy, make_app, store, store_has

__all__ = ("store",)


def refusing(app: Any, refuse: Any) -> None:
    """Make ``app``'s transport fail the requests ``refuse`` picks before they reach the store."""
    client = app.backend.client
    assert client.pool.slot is None, "make the transport refuse before its first use"
    factory = client.pool.factory

    class Refusing:
        def __init__(self, base: str) -> None:
            self.inner = factory(base)

        def request(self, method: bytes, target: bytes, headers: Any, body: bytes, **kw: Any) -> Any:
            if refuse(method, target):
                raise RequestTimeout("store gone (test)")
            return self.inner.request(method, target, headers, body, **kw)

        def close(self) -> None:
            self.inner.close()

    client.pool.factory = Refusing


def finish_unpatched(chord: Chord, worker: Any, i: int) -> None:
    """``Chord.finish`` for threads: the caller holds ``chord.recording()`` (patching from
    several threads at once could leave the patch in place after the test)."""
    req = chord.requests[i]
    try:
        worker.backend.mark_as_done(req.id, 2 * i, request=req)
    except Exception as exc:  # noqa: BLE001 - what trace.py's on_error does next
        worker.backend.mark_as_failure(req.id, exc, request=req)


def finish_in_threads(
    chord: Chord, worker: Any, work: list[int], *, threads: int = 16, timeout: float
) -> list[BaseException]:
    """Finish the parts in ``work`` (popped from its end) from ``threads`` threads of one process,
    as a threads or gevent worker would; what any part raised, for the caller to assert on."""
    import threading

    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        while True:
            with lock:
                if not work:
                    return
                i = work.pop()
            try:
                finish_unpatched(chord, worker, i)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    with chord.recording():
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout)
    return errors


def _is_conditional(headers: Any) -> bool:
    return any(k.lower() in (b"if-match", b"if-none-match") for k, _ in headers)


def test_lost_reply_of_the_fail_marking_put_still_fails_the_body(store: MotoServer) -> None:
    """The PUT that marks the chord failed lands, its reply is lost: the retry finds the chord
    failed and must know the mark is its own, so the body still gets its ChordError."""
    url = store.url("a17-failmark")
    producer, worker = make_app(url), make_app(url, "disabled")
    chord = Chord(producer, 3, "g-a17-failmark")
    armed = {"on": True}

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if armed["on"] and method == b"PUT" and b"chord-unlock" in target and _is_conditional(headers):
            armed["on"] = False
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    for i in range(3):
        chord.finish(worker, i)
    assert not armed["on"]
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "conditional_writes" in str(meta["result"])
    assert chord.fired == []


def test_lost_replies_of_the_cleanup_deletes_fire_once(store: MotoServer) -> None:
    """The counter's and the group's DELETE after publishing land, their first replies are lost."""
    url = store.url("a17-del")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, "g-a17-del")
    lost: set[bytes] = set()

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if method == b"DELETE" and target not in lost:
            lost.add(target)
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    for i in range(3):
        chord.finish(worker, i)
    assert len(lost) == 2, lost
    assert chord.fired == [([0, 2, 4],)]
    assert not store_has(worker, "a17-del/chord-unlock-g-a17-del")
    assert worker.backend.get_task_meta(chord.requests[2].id, cache=False)["status"] == states.SUCCESS


def test_failed_cleanup_after_publishing_does_not_fire_twice(store: MotoServer) -> None:
    """Every DELETE after publishing fails (a store that stops answering, a policy without
    DeleteObject): the body was published, so the part must neither fail nor, through Celery's
    mark_as_failure, count again and take the completion over a second time."""
    url = store.url("a17-delfail")
    producer, worker = make_app(url), make_app(url, max_attempts=1)
    worker.backend.chords.counter.lease_s = 0.2
    chord = Chord(producer, 3, "g-a17-delfail")

    refusing(worker, lambda method, target: method == b"DELETE")
    for i in range(3):
        try:
            chord.finish(worker, i)
        except RequestTimeout:
            pass  # asserted below: the body must be published once and the part stay SUCCESS
    assert chord.fired == [([0, 2, 4],)]
    assert worker.backend.get_task_meta(chord.requests[2].id, cache=False)["status"] == states.SUCCESS


@pytest.mark.parametrize("refused", [(b"PUT",), (b"PUT", b"DELETE")])
def test_permanent_403_on_the_counter_fails_the_body_once(store: MotoServer, refused: tuple[bytes, ...]) -> None:
    """A policy without PutObject on chord-unlock-*: every part's count is refused. The body gets
    one ChordError naming AccessDenied (its errbacks run once), not one per part.
    (The 403 is answered by the transport in place of a bucket policy moto does not enforce.)"""
    from s3result.s3.transport import RawResponse

    url = store.url(f"a17-403-{len(refused)}")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, f"g-a17-403-{len(refused)}")
    client = worker.backend.client
    factory = client.pool.factory
    denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>T</RequestId></Error>"

    class Denying:
        def __init__(self, base: str) -> None:
            self.inner = factory(base)

        def request(self, method: bytes, target: bytes, headers: Any, body: bytes, **kw: Any) -> Any:
            if method in refused and b"chord-unlock" in target:
                return RawResponse(403, {"content-type": "application/xml"}, denied)
            return self.inner.request(method, target, headers, body, **kw)

        def close(self) -> None:
            self.inner.close()

    client.pool.factory = Denying
    errors: list[Any] = []
    original = worker.backend.chord_error_from_stack

    def counted(callback: Any, exc: Any = None) -> Any:
        errors.append(exc)
        return original(callback, exc)

    worker.backend.chord_error_from_stack = counted  # type: ignore[method-assign]
    for i in range(3):
        chord.finish(worker, i)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "AccessDenied" in str(meta["result"])
    assert len(errors) == 1, errors
    assert chord.fired == []


def test_lost_replies_of_the_producers_create_and_size_writes(store: MotoServer) -> None:
    """The producer's counter creation and set_chord_size land, their replies are lost."""
    url = store.url("a17-producer")
    producer, worker = make_app(url), make_app(url)
    lost: list[bytes] = []

    def when(method: bytes, target: bytes, headers: Any) -> None:
        kind = b"if-match" if _is_conditional(headers) else b"create"
        if method == b"PUT" and b"chord-unlock" in target and kind not in lost:
            lost.append(kind)
            raise RequestTimeout("reply lost (test)")

    lossy(producer, when)
    chord = Chord(producer, 3, "g-a17-producer")
    assert lost == [b"create", b"if-match"], lost
    for i in range(3):
        chord.finish(worker, i)
    assert chord.fired == [([0, 2, 4],)]


def test_frozen_chord_applied_again_midway_fires_once(store: MotoServer) -> None:
    """The producer applies the same frozen chord again (a retried publish) after two parts
    counted: the counter starts over, the republished parts count again, the body fires once."""
    url = store.url("a17-reapply")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, "g-a17-reapply")
    chord.finish(worker, 0)
    chord.finish(worker, 1)
    with chord.recording():
        producer.backend.apply_chord(chord.args, chord.body)
        producer.backend.set_chord_size(chord.gid, 3)
    for i in (2, 0, 1, 2):
        chord.finish(worker, i)
    assert chord.fired == [([0, 2, 4],)]
    assert not store_has(worker, "a17-reapply/chord-unlock-g-a17-reapply")


def test_chord_from_an_older_producer_without_the_mark_fires_once(store: MotoServer) -> None:
    """An older producer: no s3result_chord mark in the body, no counter created up front."""
    from s3result.chords.rootcounter import MARK

    url = store.url("a17-old")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, "g-a17-old")
    producer.backend.client.delete("a17-old/chord-unlock-g-a17-old")
    for req in chord.requests:
        req.chord.pop(MARK)
    for i in (0, 1, 2, 1):
        chord.finish(worker, i)
    assert chord.fired == [([0, 2, 4],)]


def test_same_completing_part_in_two_processes_at_once_fires_once(store: MotoServer) -> None:
    """Two processes (separate addresses, so no shared group commit) run the last part at once."""
    import threading

    from s3result.testing.proxy import CountingProxy

    url = store.url("a17-twice")
    proxy = CountingProxy(store.host, store.port)
    try:
        producer = make_app(url)
        one, two = make_app(url), make_app(url.replace(f":{store.port}/", f":{proxy.port}/"))
        for rnd in range(3):
            chord = Chord(producer, 3, f"g-a17-twice-{rnd}")
            chord.finish(one, 0)
            chord.finish(one, 1)
            barrier = threading.Barrier(2)

            def run(app: Any, chord: Chord = chord, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                finish_unpatched(chord, app, 2)

            threads = [threading.Thread(target=run, args=(app,)) for app in (one, two)]
            with chord.recording():
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
            assert chord.fired == [([0, 2, 4],)], rnd
            assert not store_has(one, f"a17-twice/chord-unlock-g-a17-twice-{rnd}")
    finally:
        proxy.close()


def test_sixteen_threads_count_through_lost_replies(store: MotoServer) -> None:
    """16 threads of one process count a 64-part chord (each part twice) while a third of the
    conditional PUTs' replies are lost: one body, every part's value."""
    from s3result.testing.faults import FaultProxy

    faults = FaultProxy(store.host, store.port, seed=17)
    faults.set_faults(lose_conditional_reply=0.3)
    try:
        url = store.url("a17-threads")
        producer = make_app(url)
        # Enough attempts that a result write is not lost through retries: the counting is under test.
        worker = make_app(url.replace(f":{store.port}/", f":{faults.port}/"), max_attempts=12)
        chord = Chord(producer, 64, "g-a17-threads")
        work = [i for i in range(64)] * 2
        errors = finish_in_threads(chord, worker, work, timeout=60)
        assert not errors, errors
        assert faults.stats["lose_conditional_reply"] > 0
        assert chord.fired == [([2 * i for i in range(64)],)]
        assert chord.body_meta(producer)["status"] == states.PENDING
    finally:
        faults.close()


@pytest.mark.parametrize("conf", ["extended-gzip", "pickle"])
def test_chord_with_extended_compressed_or_pickled_results(store: MotoServer, conf: str) -> None:
    url = store.url(f"a17-{conf}")
    apps = [make_app(url), make_app(url)]
    for app in apps:
        if conf == "pickle":
            app.conf.update(result_serializer="pickle", accept_content=["json", "pickle"], result_accept_content=None)
        else:
            app.conf.update(result_extended=True, result_compression="gzip")
    producer, worker = apps
    chord = Chord(producer, 3, f"g-a17-{conf}")
    for i in (2, 0, 1, 1):
        chord.finish(worker, i)
    assert chord.fired == [([0, 2, 4],)]


def test_every_part_failing_and_one_redelivered_fails_the_body_once(store: MotoServer) -> None:
    url = store.url("a17-allfail")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, "g-a17-allfail")
    errors: list[Any] = []
    original = worker.backend.chord_error_from_stack

    def counted(callback: Any, exc: Any = None) -> Any:
        errors.append(exc)
        return original(callback, exc)

    worker.backend.chord_error_from_stack = counted  # type: ignore[method-assign]
    with chord.recording():
        for i in (0, 1, 2, 0, 2):
            req = chord.requests[i]
            worker.backend.mark_as_failure(req.id, ValueError(f"part {i}"), request=req)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "part 0" in str(meta["result"])
    assert len(errors) == 1, errors
    assert chord.fired == []


@pytest.mark.parametrize("landed", [False, True])
def test_take_over_whose_write_never_landed_tries_again(store: MotoServer, landed: bool) -> None:
    """The completing run died before publishing; the redelivery's take-over PUT fails without
    landing (the store unreachable for a moment, every attempt): it must try again, not give
    the chord up as finished (then nothing would ever publish the body). Or it lands and only
    its reply is lost: it fires, once."""
    from unittest import mock

    url = store.url(f"a17-takeover-{landed}")
    producer, worker, again = make_app(url), make_app(url), make_app(url, max_attempts=1)
    chord = Chord(producer, 2, f"g-a17-takeover-{landed}")
    chord.finish(worker, 0)
    with mock.patch.object(worker.backend.chords.firing, "fire", lambda *a, **k: None):
        chord.finish(worker, 1)  # counted and completed, then "killed" before publishing
    again.backend.chords.counter.lease_s = 0.3
    refused = {"n": 0}

    def refuse(method: bytes, target: bytes) -> bool:
        if method == b"PUT" and b"chord-unlock" in target and refused["n"] < 1:
            refused["n"] += 1
            return True
        return False

    if landed:
        lossy(again, lambda m, t, h: refuse(m, t) and _raise(RequestTimeout("reply lost (test)")))
    else:
        refusing(again, refuse)
    chord.finish(again, 1)
    assert refused["n"] == 1
    assert chord.fired == [([0, 2],)]
    chord.finish(again, 1)
    assert len(chord.fired) == 1


def _raise(exc: BaseException) -> None:
    raise exc


def test_completing_write_landed_then_store_gone_past_the_deadline(store: MotoServer) -> None:
    """The completing PUT lands, its reply is lost, and the counter cannot be read again before
    the CAS deadline (0.3 s; the outage lasts 0.6 s). When the store answers again, the part
    finds its own write completed the set: the body must still run once (not PENDING forever)."""
    import time

    url = store.url("a17-gone")
    producer, worker = make_app(url), make_app(url, max_attempts=1)
    worker.backend.chords.counter.deadline_s = 0.3
    worker.backend.chords.counter.lease_s = 0.2
    chord = Chord(producer, 2, "g-a17-gone")
    state: dict[str, Any] = {"armed": False, "until": 0.0}

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if b"chord-unlock" not in target:
            return
        if state["armed"] and method == b"PUT" and _is_conditional(headers):
            state["armed"], state["until"] = False, time.monotonic() + 0.6
            raise RequestTimeout("reply lost (test)")  # the completing write landed
        if time.monotonic() < state["until"]:
            raise RequestTimeout("store gone (test)")

    lossy(worker, when)
    chord.finish(worker, 0)
    state["armed"] = True
    chord.finish(worker, 1)
    meta = chord.body_meta(producer)
    assert chord.fired == [([0, 2],)] or meta["status"] == states.FAILURE, (chord.fired, meta)
    assert len(chord.fired) <= 1


def test_counting_past_the_deadline_names_the_store_error(store: MotoServer) -> None:
    """The store stops answering the counter's requests: the ChordError names that (a timeout),
    not "still losing to concurrent writers", which would send the reader after contention."""
    url = store.url("a17-cause")
    producer, worker = make_app(url), make_app(url, max_attempts=1)
    worker.backend.chords.counter.deadline_s = 0.3
    chord = Chord(producer, 2, "g-a17-cause")
    armed = {"on": False}
    refusing(worker, lambda method, target: armed["on"] and b"chord-unlock" in target and method != b"DELETE")
    chord.finish(worker, 0)
    armed["on"] = True
    chord.finish(worker, 1)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "store gone" in str(meta["result"]), meta["result"]
    assert "concurrent writers" not in str(meta["result"])


@pytest.mark.parametrize("refused", ["GET", "PUT"])
def test_counter_the_producer_cannot_set_up_never_leaves_the_body_pending(store: MotoServer, refused: str) -> None:
    """The producer's credentials are refused on the counter (a 403 from a policy; here a
    FaultProxy in front of moto answers it). PUT refused: the counter cannot be created, and
    apply_async raises before any part is published. GET refused: the counter is created, but
    recording the size (Celery calls set_chord_size before publishing the last part) fails
    after the other parts are out: the body must be FAILED with a ChordError naming the cause,
    so c.get(timeout) raises it at once, and the parts already published never fire it."""
    from celery import chord, signals
    from celery.app.task import Context
    from celery.exceptions import ChordError

    from s3result.errors import AccessDenied
    from s3result.testing.faults import FaultProxy

    proxy = FaultProxy(store.host, store.port)
    try:
        prefix = f"a17-setup-{refused.lower()}"
        worker = make_app(store.url(prefix))
        producer = make_app(store.url(prefix).replace(f":{store.port}/", f":{proxy.port}/"))
        proxy.answer(refused, f"/{prefix}/chord-unlock-", 403, code="AccessDenied")
        body = producer.tasks["tsum"].s()
        body.freeze()
        header = [producer.tasks["add"].s(i, i) for i in range(3)]
        published: list[dict[str, Any]] = []

        def seen(sender: Any = None, headers: Any = None, **_: Any) -> None:
            published.append(dict(headers))

        signals.before_task_publish.connect(seen, weak=False)
        try:
            with pytest.raises(AccessDenied):
                chord(header, body).apply_async()
        finally:
            signals.before_task_publish.disconnect(seen)
        assert proxy.stats["canned"] >= 1
        if refused == "PUT":
            assert published == []  # nothing can run
            return
        assert len(published) == 2  # the last part was never published
        started = time.monotonic()
        with pytest.raises(ChordError, match="AccessDenied") as exc:
            producer.AsyncResult(body.id).get(timeout=10, interval=0.1)
        assert time.monotonic() - started < 2
        assert "recording the chord's size failed" in str(exc.value)
        # The parts that did go out finish on a worker: they never fire the body.
        fired: list[Any] = []
        with mock.patch.object(Signature, "delay", lambda sig, *a, **k: fired.append(a)):
            for i, headers in enumerate(published):
                req = Context(
                    id=headers["id"], group=headers["group"], group_index=i, chord=dict(body), children=[], chain=None
                )
                req.errbacks = None
                worker.backend.mark_as_done(req.id, 2 * i, request=req)
        assert fired == []
        assert worker.backend.get_task_meta(body.id, cache=False)["status"] == states.FAILURE
    finally:
        proxy.close()
