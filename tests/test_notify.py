"""Notifications (s3result.waits.notify): the setting, a broker that fails, a broker that carries none.

Integration (moto): tests/integration/test_notify.py, the result stored before its notification goes.
End to end, on real Redis and RabbitMQ brokers and workers: tests/e2e/test_notify.py.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from celery import Celery, states

from s3result.errors import ConfigError
from s3result.results.config import build
from s3result.waits import notify, notifyformat, notifylistener, notifyregistry


def test_notify_is_on_by_default_and_can_be_turned_off() -> None:
    assert build(url="s3result://bkt").notify is True
    assert build(url="s3result://bkt?notify=off").notify is False
    assert build(url="s3result://bkt", options={"notify": "no"}).notify is False
    with pytest.raises(ConfigError) as exc:
        build(url="s3result://bkt?notify=sometimes")
    assert str(exc.value).startswith("notify")


def test_a_failing_broker_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    """publish() swallows the broker's error (the caller polls) and says so once per process."""

    class Broken:
        conf = Celery("broken", set_as_current=False).conf

        def connection_for_write(self) -> Any:
            raise ConnectionError("broker down")

    notify._SAID.get().discard("publish")
    with caplog.at_level(logging.WARNING, logger="s3result.waits.notify"):
        assert notify.publish(Broken(), "oid", "tid", states.SUCCESS, None) is False
        assert notify.publish(Broken(), "oid", "tid", states.SUCCESS, None) is False
    lines = [r for r in caplog.records if "could not notify" in r.getMessage()]
    assert len(lines) == 1 and "broker down" in lines[0].getMessage()


def test_no_listener_where_the_broker_carries_no_notifications(caplog: pytest.LogCaptureFixture) -> None:
    """A memory (or SQS, filesystem...) broker: waits poll as without notifications, said once at INFO."""
    app = Celery("notify-memory", set_as_current=False)
    app.conf.broker_url = "memory://"
    assert notify.listener_for(app) is None  # this process sent nothing: nobody would notify it
    notify.sent_from(app, app.thread_oid)
    notify._SAID.get().discard("memory")
    with caplog.at_level(logging.INFO, logger="s3result.waits.notify"):
        assert notify.listener_for(app) is None
        assert notify.listener_for(app) is None
    lines = [r for r in caplog.records if "poll the store" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert notify.broker_kind(app) == "memory"


def _listener() -> notify.Listener:
    """A listener whose thread is never started: its bookkeeping is pure logic."""
    app = Celery("notify-logic", set_as_current=False)
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    return notify.Listener(app, "redis")


def _note(task_id: str) -> bytes:
    return notifyformat.payload(task_id, states.SUCCESS, '"etag"').encode()


def test_a_notification_wakes_the_waits_on_its_id_and_only_those() -> None:
    listener = _listener()
    listener.up(set(), set())
    a, b = notify.Watch(listener, ["t1"]), notify.Watch(listener, ["t1", "t2"])
    for w in (a, b):
        for tid in w.ids:
            listener._watches.setdefault(tid, []).append(w)
    listener.deliver(_note("t2"))
    listener.deliver(_note("unknown"))  # another process's task on the same channel: ignored
    listener.deliver(b"not json")
    listener.deliver(b'{"state": "SUCCESS"}')
    assert listener.delivered == 1
    assert a.wait(0) == (set(), False)
    assert b.wait(0) == ({"t2"}, False)
    assert b.wait(0) == (set(), False)  # taken once
    listener.deliver(_note("t1"))
    assert a.wait(0) == ({"t1"}, False) and b.wait(0) == ({"t1"}, False)
    a.close()
    b.close()
    assert listener._watches == {}


def test_polls_slow_down_only_while_notifications_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifylistener, "LATE_GRACE", 0.0)  # a notification not there when the poll found it is lost
    listener = _listener()
    w = notify.Watch(listener, ["t1", "t2"])
    listener._watches = {"t1": [w], "t2": [w]}
    assert not w.reliable()  # not connected, nothing arrived yet
    listener.up({"oid"}, set())
    listener._wanted = {"oid"}
    w.epoch = listener.epoch  # as watch() does once subscribed
    assert not w.reliable()  # connected, but no notification has woken a wait yet
    listener.deliver(_note("t1"))
    assert w.wait(0) == ({"t1"}, False)
    assert w.reliable()
    w.found_by_poll("t1")  # read after its notification: notifications still arrive
    assert w.reliable()
    w.found_by_poll("t2")  # found by a poll, no notification: poll as without them
    assert not w.reliable() and listener.distrusted == 1
    listener._wanted = {"oid", "another thread"}
    listener.trusted = True
    assert not w.reliable()  # a sending thread not subscribed yet


def test_after_a_reconnect_every_wait_reads_again() -> None:
    """Notifications sent while the connection was down are lost: once subscribed again, all waits read."""
    listener = _listener()
    w = notify.Watch(listener, ["t1"])
    listener.up(set(), {"oid"})
    assert w.wait(0) == (set(), False)  # not confirmed yet: no re-read before the subscription holds
    listener._down(ConnectionError("broker restarted"))
    assert listener._failed and not listener._connected
    listener.up(set(), {"oid"})
    with listener._cond:
        listener.confirm({"oid"})
    assert w.wait(0) == (set(), True)
    assert w.wait(0) == (set(), False)


def test_a_forked_child_starts_afresh() -> None:
    """A child never uses its parent's listener (its socket is the parent's) nor its senders."""
    import os

    app = Celery("notify-fork", set_as_current=False)
    app.conf.broker_url = "memory://"
    notify.sent_from(app, "parent-thread")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit code is the assertion
        os._exit(0 if not notifyregistry._SENDERS.get() and not notifyregistry._LISTENERS.get() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert notifyregistry._SENDERS.get()[id(app)] == {"parent-thread"}


def test_sending_threads_listened_for_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("notify-many", set_as_current=False)
    monkeypatch.setattr(notifyregistry, "MAX_SENDERS", 3)
    for i in range(10):
        notify.sent_from(app, f"thread-{i}")
    assert notifyregistry._SENDERS.get()[id(app)] == {"thread-0", "thread-1", "thread-2"}


def test_what_anyone_may_publish_is_dropped_unless_it_names_a_watched_id() -> None:
    """Malformed, nested, oversized or non-string ids are dropped without raising (the listener
    would lose its connection); an id as long as an S3 key allows still wakes its wait."""
    listener = _listener()
    long_id = "t" * 950
    w = notify.Watch(listener, ["t1", long_id])
    with listener._cond:
        for task_id in w.ids:
            listener._watches.setdefault(task_id, []).append(w)
    for junk in (
        b"\xff",
        b"[1]",
        b'{"id": null}',
        b'{"id": ["t1"]}',
        b"[" * 100_000,
        b'{"id": "t1", "x": "' + b"y" * 3000 + b'"}',
    ):
        listener.deliver(junk)
    assert listener.delivered == 0 and not w.notified
    listener.deliver(_note(long_id))
    listener.deliver(_note("t1"))
    assert w.notified == {"t1", long_id}


def _trusting() -> tuple[notify.Listener, notify.Watch]:
    listener = _listener()
    w = notify.Watch(listener, ["t1", "t2"], quiet=0.2)
    listener._watches = {"t1": [w], "t2": [w]}
    listener.up({"oid"}, set())
    listener._wanted = {"oid"}
    w.epoch = listener.epoch
    listener.trusted = True
    return listener, w


def test_a_notification_later_than_the_poll_keeps_the_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll may read a result between the worker's PUT and its publish: the notification that
    follows within LATE_GRACE is late, not lost, and polls stay slow; one that never comes is lost."""
    monkeypatch.setattr(notifylistener, "LATE_GRACE", 0.2)
    listener, w = _trusting()
    w.found_by_poll("t1")
    assert w.reliable()  # within the grace
    listener.deliver(_note("t1"))  # it comes: late
    time.sleep(0.3)
    assert w.reliable() and listener.distrusted == 0
    w.found_by_poll("t2")
    time.sleep(0.3)  # never comes
    assert not w.reliable() and listener.distrusted == 1


def test_repeated_notifications_wake_a_wait_once_per_interval() -> None:
    """A flood naming one id: the first wakes the wait; the rest within ``quiet`` are held until it ends."""
    listener, w = _trusting()
    listener.deliver(_note("t1"))
    assert w.wait(0) == ({"t1"}, False)
    start = time.monotonic()
    for _ in range(1000):
        listener.deliver(_note("t1"))
    assert w.wait(0) == (set(), False)  # held: no read now
    assert w.wait(30.0) == ({"t1"}, False)  # woken once the hold (0.2 s) ends, not after 30 s
    assert 0.2 <= time.monotonic() - start < 15.0
    listener.deliver(_note("t2"))  # another id is not held
    assert w.wait(0) == ({"t2"}, False)


def test_a_failure_notification_is_remembered_for_the_parents_check() -> None:
    """A chord's part notified as failed is read again by the check of the body's parents,
    waited on or not; other states, malformed notes and an old failure past the limit are not."""
    listener = _listener()
    listener.deliver(json.dumps({"id": "part-1", "state": "FAILURE", "etag": None}))
    listener.deliver(json.dumps({"id": "part-2", "state": "SUCCESS", "etag": None}))
    listener.deliver(json.dumps(["part-3", "FAILURE"]))
    assert listener.notified_failed("part-1")
    assert not listener.notified_failed("part-2")
    assert not listener.notified_failed("part-3")
    for i in range(notify.MAX_FAILURES):
        listener.deliver(json.dumps({"id": f"other-{i}", "state": "REVOKED"}))
    assert not listener.notified_failed("part-1")  # the oldest went first
    assert listener.notified_failed(f"other-{notify.MAX_FAILURES - 1}")


def test_a_failure_of_any_task_wakes_the_waits_that_check_parents_once_per_interval() -> None:
    """A chord body's wait (``failures``) is woken by a part's FAILURE notification, whatever the
    part's id, so its check of the parents reads the part at once, not at the next poll; a wait
    without parents to check is not; a flood of failures naming other ids wakes it once per
    ``quiet``; a wait that ended is forgotten."""
    listener, plain = _trusting()
    body = notify.Watch(listener, ["body"], quiet=0.2, failures=True)
    body.epoch = listener.epoch
    listener._watches["body"] = [body]
    listener._failure_watches.append(body)
    listener.deliver(json.dumps({"id": "part-7", "state": "SUCCESS", "etag": None}))
    listener.deliver(json.dumps({"id": "part-8", "state": "FAILURE", "etag": None}))
    start = time.monotonic()
    assert body.wait(30.0) == (set(), False)  # woken now, not after 30 s
    woke = time.monotonic()
    assert woke - start < 15.0
    start = time.monotonic()
    assert plain.wait(0.1) == (set(), False)
    assert time.monotonic() - start >= 0.09  # not woken: it has no parents to check
    for i in range(1000):
        listener.deliver(json.dumps({"id": f"forged-{i}", "state": "FAILURE", "etag": None}))
    assert body.wait(30.0) == (set(), False)  # held until a quiet (0.2 s) after the last wake-up
    assert 0.19 <= time.monotonic() - woke < 15.0
    assert body.wait(0.05) == (set(), False) and not body.failed  # the flood woke it once
    listener.deliver(json.dumps({"id": "body", "state": "FAILURE", "etag": None}))
    assert body.wait(0) == ({"body"}, False)  # its own id, as always
    body.close()
    assert listener._failure_watches == []
