"""Review attacks on issue 17's native chords (lost replies at the remaining steps, cleanup
failures, 1,000-part counters), each on a real moto server in the style of test_chord_cases."""

from __future__ import annotations

from typing import Any

import pytest
from celery import states

from s3result.errors import RequestTimeout
from s3result.testing.store import MotoServer

from .test_chord_cases import Chord, lossy, make_app, store, store_has

__all__ = ("store",)


def refusing(app: Any, refuse: Any) -> None:
    """Make ``app``'s transport fail the requests ``refuse`` picks before they reach the store."""
    client = app.backend.client
    assert client._slot is None, "make the transport refuse before its first use"
    factory = client._transport_factory

    class Refusing:
        def __init__(self, base: str) -> None:
            self.inner = factory(base)

        def request(self, method: bytes, target: bytes, headers: Any, body: bytes, **kw: Any) -> Any:
            if refuse(method, target):
                raise RequestTimeout("store gone (test)")
            return self.inner.request(method, target, headers, body, **kw)

        def close(self) -> None:
            self.inner.close()

    client._transport_factory = Refusing


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
    worker.backend._chords.lease_s = 0.2  # type: ignore[attr-defined]
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
    from s3result.transport import RawResponse

    url = store.url(f"a17-403-{len(refused)}")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 3, f"g-a17-403-{len(refused)}")
    client = worker.backend.client
    factory = client._transport_factory
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

    client._transport_factory = Denying
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
