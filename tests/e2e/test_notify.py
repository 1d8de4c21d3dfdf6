"""Waking the caller over the broker (s3result.waits.notify), on real Redis and RabbitMQ brokers and workers.

The caller reaches the store through a ``CountingProxy``, so GETs per ``get()`` are counted at the
wire. Faults: a notification lost on the way (the worker drops it: ``E2E_DROP_NOTIFY``), the caller's
subscription killed mid-wait (Redis ``CLIENT KILL``), a worker with ``notify=off`` beside one with
it on, a second process waiting for the same result, and a caller SIGKILLed mid-wait while 1,000
tasks it sent still run (nothing may pile up on the broker). Unit-level: tests/test_notify.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import chord, group

from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer
from s3result.waits import notify, notifyformat, notifyregistry, readahead
from tests.brokers import Broker, RabbitMQServer, RedisServer

from .conftest import ROOT, Worker, point_app_at, queue_for

pytestmark = pytest.mark.e2e

_FIXTURE = {"redis": "redis_broker", "rabbitmq": "rabbitmq_broker"}
_NAMESPACES = {"redis": 11, "rabbitmq": 111}  # apart from test_brokers' namespaces


def _adaptive_gets(seconds: float, first: float = 0.025, interval: float = 0.5) -> int:
    """GETs adaptive polling alone spends waiting ``seconds`` (s3result.waits.polling's formula)."""
    k = math.ceil(math.log2(interval / first))
    ramp = first * (2**k - 1)
    if seconds <= ramp:
        return 1 + math.ceil(math.log2(seconds / first + 1))
    return 1 + k + math.ceil((seconds - ramp) / interval)


@dataclass
class Caller:
    """The test process as a caller: the e2e app on the worker's broker, its store behind a proxy."""

    module: Any
    proxy: CountingProxy
    worker: Worker
    broker: Broker
    namespace: int

    @property
    def app(self) -> Any:
        return self.module.app

    def listener(self) -> notify.Listener:
        listener = notify.current_listener(self.app)
        assert listener is not None, "no notification listener in the caller"
        return listener

    def gets(self, fn: Any) -> tuple[Any, int, float]:
        """Run ``fn``; its value, the GETs it sent to the store, and its wall time."""
        before = self.proxy.snapshot()
        start = time.monotonic()
        value = fn()
        return value, (self.proxy.snapshot() - before)["GET"], time.monotonic() - start

    def warm(self) -> None:
        """Waits until this process trusts notifications (polls slowly behind them): at least 3,
        more while the listener is still reconnecting (after a broker restart in the test before)."""
        deadline = time.monotonic() + 30
        for n in range(1000):
            assert self.module.sleepy.delay(0.05).get(timeout=60) == 0.05
            if n >= 2 and (self.listener().reliable() or time.monotonic() > deadline):
                break
        assert self.listener().reliable(), self.worker.tail()

    def env(self) -> dict[str, str]:
        return dict(self.worker.env)


def _caller(moto: MotoServer, worker: Worker, broker: Broker, namespace: int) -> Caller:
    proxy = CountingProxy("127.0.0.1", moto.port)
    url = worker.url.replace(f"127.0.0.1:{moto.port}/", f"127.0.0.1:{proxy.port}/", 1)
    module = point_app_at(url, worker.broker_dir, broker, namespace)
    return Caller(module, proxy, worker, broker, namespace)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def stack(
    request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Broker, Worker]]:
    """One worker (threads pool, 8) on the broker, notifications on (the default), some dropped."""
    name = request.param
    broker = request.getfixturevalue(_FIXTURE[name])
    tmp = tmp_path_factory.mktemp(f"notify-{name}")
    worker = Worker(
        moto_server.url(prefix=f"notify-{name}"),
        tmp,
        pool="threads",
        concurrency=8,
        name=f"notify-{name}",
        broker=broker,
        namespace=_NAMESPACES[name],
        extra_env={"E2E_DROP_NOTIFY": "1"},
    )
    worker.start()
    yield broker, worker
    worker.stop()
    from tests.e2e import app as module

    listener = notify.current_listener(module.app)
    if listener is not None:
        listener.stop()  # its connection closes: the next module starts from nothing
        assert notify.current_listener(module.app) is None


@pytest.fixture
def caller(stack: tuple[Broker, Worker], moto_server: MotoServer) -> Iterator[Caller]:
    broker, worker = stack
    c = _caller(moto_server, worker, broker, worker.namespace)
    c.warm()
    yield c
    c.proxy.close()


def test_a_woken_get_costs_two_gets(caller: Caller) -> None:
    """Listen, read once (pending), woken, read once: 2 GETs, plus one per interval of polling behind."""
    counts, woken = [], 0
    for seconds in (0.1, 0.3, 0.7, 1.3):
        delivered = caller.listener().delivered
        value, gets, wall = caller.gets(lambda s=seconds: caller.module.sleepy.delay(s).get(timeout=60))
        assert value == seconds
        woken += caller.listener().delivered - delivered
        # Polling behind the notification every interval (0.5 s): a wait of `wall` seconds polls
        # at 0, 0.5, 1.0...; the notification adds the read that returns.
        assert gets <= 2 + int(wall / 0.5), (seconds, gets, wall)
        assert gets <= _adaptive_gets(wall), (seconds, gets, wall)
        counts.append(gets)
    # A notification can lose the race to a poll that lands between the store's write and the
    # broker's publish (a millisecond or so): most waits are woken, none costs more than the bound.
    assert woken >= 3, f"{woken} of 4 waits woken, GETs {counts}"
    assert 2 in counts, counts


def test_a_lost_notification_costs_no_more_than_polling(caller: Caller) -> None:
    """The worker stores the result and never notifies: the caller's polling finds it within an interval."""
    tid = f"drop-{uuid.uuid4()}"
    value, gets, wall = caller.gets(lambda: caller.module.sleepy.apply_async((0.3,), task_id=tid).get(timeout=60))
    assert value == 0.3
    # Trusting notifications, it polled every interval: at 0 and 0.5 s (the result landed at ~0.3 s).
    assert gets <= _adaptive_gets(wall), (gets, wall)
    assert wall < 0.3 + 0.5 + 2.0  # within an interval of the result, generous for a busy machine
    # One missed notification (not there LATE_GRACE after the poll) is enough to poll as without them again...
    time.sleep(notify.LATE_GRACE + 0.2)
    assert not caller.listener().reliable()
    tid = f"drop-{uuid.uuid4()}"
    _, gets, wall = caller.gets(lambda: caller.module.sleepy.apply_async((0.1,), task_id=tid).get(timeout=60))
    assert gets <= _adaptive_gets(wall), (gets, wall)
    # ...until notifications wake waits again (a fast poll may still find a result first).
    for _ in range(5):
        assert caller.module.sleepy.delay(0.1).get(timeout=60) == 0.1
        if caller.listener().reliable():
            break
    assert caller.listener().reliable()


def test_a_group_of_100_is_woken(caller: Caller) -> None:
    delivered = caller.listener().delivered
    res = group(caller.module.sleepy.s(0.2) for _ in range(100)).apply_async()
    values, gets, _ = caller.gets(lambda: res.get(timeout=120))
    assert values == [0.2] * 100
    woken = caller.listener().delivered - delivered
    # Most are woken; a result that a poll (the join's sentinel, every interval) reads between the
    # worker's PUT and its publish needs no wake-up. On a loaded machine that window widens (89 of
    # 100 seen in CI beside other jobs), so the bound is a majority; the GETs below are the cost.
    assert woken >= 50, f"only {woken} of 100 results were notified"
    # Each result read when listening starts (pending) and once when notified; a few sentinel polls.
    assert gets <= 2 * 100 + 10, gets


def test_a_chord_of_100_is_woken(caller: Caller) -> None:
    """The body (2 s, after a header of 100) wakes the caller that applied the chord."""
    delivered = caller.listener().delivered
    # 2 s: the body's notification must come once the wait listens, after Celery's check of the
    # header (100 GETs before ``get()`` waits: up to a second on a loaded machine).
    res = chord(caller.module.part.s(i) for i in range(100))(caller.module.slow_part.s(2.0))
    # The header stored before the caller looks (read straight from the store, not through the
    # caller): a part still pending at the caller's check is read again at the next one, which on a
    # loaded machine made the count depend on the worker's pace, not on what the caller reads.
    _until_stored(caller, [r.id for r in res.parent.results])
    value, gets, wall = caller.gets(lambda: res.get(timeout=120))
    assert value == list(range(100)), caller.worker.tail()
    assert caller.listener().delivered == delivered + 1, "the chord's body did not wake its caller"
    # Celery's get() first checks the body's parents: the header's 100 results, each read once
    # (once ready, they are cached). Then the body: read, woken, read; a poll every interval behind.
    assert gets <= 100 + 2 + math.ceil(wall / 0.5), gets


def _until_stored(caller: Caller, ids: list[str], timeout: float = 120.0) -> None:
    """Wait until every id's result is in the store, reading it directly (the worker's own URL)."""
    from celery import Celery

    app = Celery("header-check", set_as_current=False)
    app.conf.result_backend = caller.worker.url
    backend = app.backend
    deadline = time.monotonic() + timeout
    while any(item is None for item in backend.client.get_many([backend.store.task_key(i) for i in ids])):
        assert time.monotonic() < deadline, "the header was never stored"
        time.sleep(0.1)


def test_the_subscription_killed_mid_wait(caller: Caller) -> None:
    """The broker drops the caller's listening connection mid-wait: it returns, reconnects, is woken again."""
    if not isinstance(caller.broker, RedisServer):
        pytest.skip("killing one client connection is a Redis command (CLIENT KILL TYPE pubsub)")
    import redis

    client = redis.Redis(port=caller.broker.port)
    res = caller.module.sleepy.delay(1.0)
    time.sleep(0.3)
    assert client.client_kill_filter(_type="pubsub") >= 1
    assert res.get(timeout=60) == 1.0
    deadline = time.monotonic() + 30
    delivered = caller.listener().delivered
    while caller.listener().delivered == delivered and time.monotonic() < deadline:
        assert caller.module.sleepy.delay(0.05).get(timeout=60) == 0.05
    assert caller.listener().delivered > delivered, "the listener never came back"


_WAITER = """
import sys
from tests.e2e import app as m
res = m.app.AsyncResult(sys.argv[1])
print("value", res.get(timeout=60), flush=True)
"""


def test_two_processes_wait_for_one_result(caller: Caller) -> None:
    """The sender is woken; another process, which did not send the task, polls and returns too."""
    # 0.7 s: between two of the sender's slow polls (0.5 s apart), so its notification is what ends its wait.
    res = caller.module.sleepy.delay(0.7)
    other = subprocess.Popen(
        [sys.executable, "-c", _WAITER, res.id], cwd=ROOT, env=caller.env(), stdout=subprocess.PIPE, text=True
    )
    try:
        delivered = caller.listener().delivered
        assert res.get(timeout=60) == 0.7
        assert caller.listener().delivered == delivered + 1
        out, _ = other.communicate(timeout=60)
    finally:
        other.kill()
    assert out.strip() == "value 0.7", out


_DOOMED = """
import json, sys
from celery import group
from s3result.waits import notify
from tests.e2e import app as m
assert m.add.delay(1, 1).get(timeout=60) == 2  # listening now
listener = notify.current_listener(m.app)
res = group(m.add.s(i, i) for i in range(1000)).apply_async()
with open(sys.argv[1], "w") as f:
    json.dump({"ids": [r.id for r in res.results], "reply_to": m.app.thread_oid, "queue": listener.queue}, f)
print("waiting", flush=True)
res.get(timeout=300)
"""


def _redis_state(broker: RedisServer, namespace: int) -> tuple[set[bytes], int, list[Any]]:
    """Keys of the namespace's database, the length of all its lists, and live notification channels."""
    import redis

    client = redis.Redis(port=broker.port, db=namespace % 16)
    keys = set(client.keys("*"))
    lists = sum(client.llen(k) for k in keys if client.type(k) == b"list")
    return keys, lists, client.pubsub_channels(f"{notify.CHANNEL_PREFIX}*")


def test_a_caller_sigkilled_mid_wait_leaves_nothing_behind(caller: Caller, tmp_path: Path) -> None:
    """The caller dies while 1,000 tasks it sent still run; each notifies it; nothing accumulates."""
    broker = caller.broker
    if isinstance(broker, RedisServer):
        keys_before, lists_before, _ = _redis_state(broker, caller.namespace)
    else:
        assert isinstance(broker, RabbitMQServer)
        queues_before = broker.queues()
    info = tmp_path / "doomed.json"
    env = caller.env()
    if isinstance(broker, RabbitMQServer):
        # Every task reaches the broker before the caller dies: a process killed with frames
        # still unread on its socket resets the connection, and what it sent last may be lost.
        env["E2E_BROKER_OPTIONS"] = json.dumps({**json.loads(env["E2E_BROKER_OPTIONS"]), "confirm_publish": True})
    doomed = subprocess.Popen(
        [sys.executable, "-c", _DOOMED, str(info)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "waiting"
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        doomed.kill()
        doomed.wait()
    sent = json.loads(info.read_text())
    # Every task runs, is stored and notifies the dead caller; read them all (this process polls).
    joined: dict[str, Any] = {}
    try:
        for task_id, meta in caller.app.backend.get_many(sent["ids"], timeout=180):
            joined[task_id] = meta
    except caller.app.backend.TimeoutError:
        pass
    assert len(joined) == 1000, f"{len(joined)} of 1000 tasks stored: {caller.worker.tail()}"
    time.sleep(1.0)  # the last notifications land
    if isinstance(broker, RedisServer):
        keys_after, lists_after, channels = _redis_state(broker, caller.namespace)
        assert keys_after <= keys_before, f"new keys: {keys_after - keys_before}"
        assert lists_after <= lists_before
        assert (notify.CHANNEL_PREFIX + sent["reply_to"]).encode() not in channels
        assert not [k for k in keys_after if b"s3result" in k or sent["reply_to"].encode() in k]
    else:
        queues_after = broker.queues()
        assert sent["queue"] not in queues_after, "the dead caller's queue outlived it"
        assert set(queues_after) <= set(queues_before), f"new queues: {set(queues_after) - set(queues_before)}"
        assert sum(queues_after.values()) <= sum(queues_before.values()), queues_after


def test_a_notify_off_worker_beside_notifying_ones(caller: Caller, moto_server: MotoServer, tmp_path: Path) -> None:
    """A worker with notify=off takes some of the tasks: their callers poll and return within an interval."""
    off = Worker(
        caller.worker.url + "?notify=off",
        tmp_path,
        pool="threads",
        concurrency=8,
        name=f"notify-off-{caller.broker.name}",
        broker=caller.broker,
        namespace=caller.namespace,
    )
    assert off.env["E2E_QUEUE"] == queue_for(caller.namespace)  # the same queue: both take its tasks
    off.start()
    try:
        walls = []
        for _ in range(12):
            value, gets, wall = caller.gets(lambda: caller.module.sleepy.delay(0.1).get(timeout=60))
            assert value == 0.1
            assert gets <= _adaptive_gets(wall), (gets, wall)  # never more than polling alone
            walls.append(wall)
        assert max(walls) < 0.1 + 0.5 + 2.0, walls  # within an interval of the result, generous
        assert "Task tests.e2e.app.sleepy" in off.tail(20000), "the notify=off worker took no task"
    finally:
        off.stop()


_GREEN = {
    "gevent": """
from gevent import monkey

monkey.patch_all()
import gevent
from s3result.waits import notify
from tests.e2e import app as m

jobs = [gevent.spawn(lambda: m.sleepy.delay(0.3).get(timeout=60)) for _ in range(20)]
gevent.joinall(jobs, timeout=120)
values = [j.value for j in jobs]
print(values.count(0.3), notify.current_listener(m.app).delivered, flush=True)
""",
    "eventlet": """
import eventlet

eventlet.monkey_patch()
from s3result.waits import notify
from tests.e2e import app as m

values = list(eventlet.GreenPool().imap(lambda _: m.sleepy.delay(0.3).get(timeout=60), range(20)))
print(values.count(0.3), notify.current_listener(m.app).delivered, flush=True)
""",
}


@pytest.mark.parametrize("green", ["gevent", "eventlet"])
def test_green_callers_are_woken(caller: Caller, green: str) -> None:
    """20 greenlets of one monkey-patched process wait at once: all return, woken by notifications."""
    import importlib.util

    if importlib.util.find_spec(green) is None:  # not imported here: it would patch this process
        pytest.skip(f"{green} is a test dependency (pyproject [test]) and is not installed here")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _GREEN[green]],
        cwd=ROOT,
        env=caller.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    returned, delivered = map(int, out.stdout.split())
    assert returned == 20, out.stderr[-3000:]
    assert delivered >= 15, f"only {delivered} of 20 waits were woken"


def test_a_child_forked_while_the_listener_runs_waits_on_its_own(caller: Caller) -> None:
    """A caller forks (os.fork) while its listener thread runs: the child's waits return, the parent's too."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            value = caller.module.sleepy.delay(0.2).get(timeout=20)
            os.write(w, json.dumps({"value": value, "delivered": caller.listener().delivered}).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - told to the parent
            os.write(w, repr(exc).encode()[:4000])
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's get() hung")
    said = os.read(r, 8192).decode()
    os.close(r)
    assert status == 0, said
    assert json.loads(said)["value"] == 0.2
    assert caller.module.sleepy.delay(0.05).get(timeout=20) == 0.05  # the parent's listener is intact


def test_a_forged_notification_is_never_the_result(caller: Caller) -> None:
    """Notifications nobody asked for, forged ones (a ready state for a running task), garbage: the store decides."""
    publish = notify.publish
    reply_to = caller.app.thread_oid
    res = caller.module.sleepy.delay(3.0)
    before = caller.listener().epoch
    for payload in ("not json", "[1]", '{"id": null}', "[" * 100_000, '{"id": "nobody-asked"}'):
        if isinstance(caller.broker, RedisServer):
            import redis

            redis.Redis(port=caller.broker.port, db=caller.namespace % 16).publish(
                notify.CHANNEL_PREFIX + reply_to, payload
            )
    assert publish(caller.app, reply_to, res.id, "SUCCESS", '"forged"')
    with pytest.raises(caller.app.backend.TimeoutError):
        res.get(timeout=1.0)
    assert res.state != "SUCCESS"
    assert res.get(timeout=60) == 3.0
    assert caller.module.sleepy.delay(0.05).get(timeout=20) == 0.05
    assert caller.listener().epoch == before, "a forged notification made the listener reconnect"


def test_a_listener_started_before_any_subscription_connects(caller: Caller) -> None:
    """The listening thread may run before a wait says what to subscribe to: it waits, never errs.

    A Redis SUBSCRIBE of no channel is an error; a listener that sent one failed, reconnected and,
    marked as failing, let the next wait read before it was subscribed (a notification lost).
    """
    from celery import Celery

    app = Celery("early-listener", set_as_current=False)
    app.conf.broker_url = caller.broker.url(caller.namespace)
    app.conf.broker_transport_options = caller.broker.transport_options(caller.namespace)
    listener = notify.Listener(app, notify.broker_kind(app))
    try:
        listener.start()  # nothing to subscribe to yet
        time.sleep(1.0)
        assert not listener._failed, "the listener failed with nothing to listen to"
        notify.sent_from(app, "a-sending-thread")
        w = listener.watch(["some-task"], timeout=10)
        assert listener._wanted <= listener._confirmed, "the wait went on before it was subscribed"
        w.close()
    finally:
        listener.stop()
        notifyregistry._SENDERS.get().pop(id(app), None)


def test_a_redis_restart_while_callers_wait(moto_server: MotoServer, tmp_path: Path) -> None:
    """The broker crashes and comes back while a caller waits: waits stay bounded, and are woken again after."""
    import threading

    broker = RedisServer()
    broker.start()
    worker = Worker(
        moto_server.url(prefix="notify-restart"),
        tmp_path,
        pool="threads",
        concurrency=4,
        name="notify-restart",
        broker=broker,
        namespace=12,
    )
    worker.start()
    c = _caller(moto_server, worker, broker, 12)
    try:
        c.warm()
        res = c.module.sleepy.delay(3.0)
        outcome: dict[str, Any] = {}

        def wait() -> None:
            start = time.monotonic()
            try:
                outcome["value"] = res.get(timeout=60)
            except BaseException as exc:  # noqa: BLE001 - told to the test
                outcome["error"] = exc
            outcome["wall"] = time.monotonic() - start

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)
        broker.kill()
        # While the broker is down: a wait on a task that never ends still times out on time.
        start = time.monotonic()
        with pytest.raises(c.app.backend.TimeoutError):
            c.app.AsyncResult(str(uuid.uuid4())).get(timeout=2.0)
        assert time.monotonic() - start < 2.0 + 3.0
        time.sleep(1.0)
        broker.revive()
        waiter.join(timeout=90)
        assert not waiter.is_alive(), "a wait hung across the broker's restart"
        assert outcome.get("value") == 3.0, (outcome, worker.tail())
        # Woken again: the listener came back. The worker is started afresh: a Celery worker on
        # Redis may die of the restart itself (kombu: "Unrecoverable error: AttributeError
        # ('NoneType' object has no attribute 'hostname')"), which is no part of this test.
        worker.stop()
        worker.start()
        deadline = time.monotonic() + 60
        delivered = c.listener().delivered
        while c.listener().delivered == delivered and time.monotonic() < deadline:
            assert c.module.sleepy.delay(0.05).get(timeout=60) == 0.05, worker.tail()
        assert c.listener().delivered > delivered, "the listener never came back after the restart"
    finally:
        listener = notify.current_listener(c.app)
        if listener is not None:
            listener.stop()
        c.proxy.close()
        worker.stop()
        broker.stop()


def test_many_threads_wait_at_once(caller: Caller) -> None:
    """32 threads of one process send and wait at once: one listener, all return, most are woken."""
    from concurrent.futures import ThreadPoolExecutor

    threads_before = threading.active_count()
    delivered = caller.listener().delivered
    with ThreadPoolExecutor(32) as pool:
        values = list(pool.map(lambda _: caller.module.sleepy.delay(0.3).get(timeout=60), range(32)))
    assert values == [0.3] * 32
    assert caller.listener().delivered - delivered >= 16, "most waits should be woken, not polled"
    assert threading.active_count() <= threads_before + 1, "a listener per thread?"


def test_10000_waits_leave_the_listener_as_it_was(caller: Caller) -> None:
    """Watches that come and go, each notified: no watch, id or thread left behind, memory bounded."""
    import gc
    import tracemalloc

    listener = caller.listener()
    reply_to = caller.app.thread_oid
    caller.module.sleepy.delay(0.01).get(timeout=60)  # this thread is a sender, subscribed
    threads = threading.active_count()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(10_000):
            task_id = f"growth-{i}"
            w = listener.watch([task_id], timeout=5)
            if i % 10 == 0:  # a tenth notified (a round trip through the broker each), the rest time out
                assert notify.publish(caller.app, reply_to, task_id, "SUCCESS", None)
                assert w.wait(10)[0] == {task_id}
            else:
                w.wait(0)
            w.close()
            if i == 999:
                gc.collect()
                early = tracemalloc.get_traced_memory()[0]
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert not listener._watches, "watches outlived their waits"
    assert threading.active_count() <= threads, "threads grew"
    assert late - early < 256 * 1024, f"memory grew by {late - early} bytes over 9,000 waits"


def test_two_apps_of_one_process_on_two_brokers(
    caller: Caller, moto_server: MotoServer, redis_broker: RedisServer, tmp_path: Path
) -> None:
    """A second app in the caller's process, on another broker (its own Redis database), waits beside the first.

    Each app gets its own listener on its own broker; waits on both at once from one thread are woken.
    """
    from celery import Celery

    other = Worker(
        moto_server.url(prefix="notify-other-app"),
        tmp_path,
        pool="threads",
        concurrency=4,
        name="notify-other-app",
        broker=redis_broker,
        namespace=13,
    )
    other.start()
    app = Celery("other-app", set_as_current=False)
    app.conf.update(
        broker_url=redis_broker.url(13),
        broker_transport_options=redis_broker.transport_options(13),
        task_default_queue=queue_for(13),
        result_backend=other.url,
    )
    try:
        for _ in range(3):
            a = caller.module.sleepy.delay(0.3)
            b = app.send_task("tests.e2e.app.sleepy", (0.4,))
            assert (a.get(timeout=60), b.get(timeout=60)) == (0.3, 0.4), other.tail()
        mine, theirs = notify.current_listener(caller.app), notify.current_listener(app)
        assert mine is not None and theirs is not None and mine is not theirs
        assert theirs.delivered >= 2, "the second app's waits were never woken"
        assert caller.module.sleepy.delay(0.05).get(timeout=60) == 0.05  # the first app's listener intact
    finally:
        listener = notify.current_listener(app)
        if listener is not None:
            listener.stop()
        notifyregistry._SENDERS.get().pop(id(app), None)
        other.stop()


def test_notified_while_the_store_is_down_with_always_retry(caller: Caller, moto_server: MotoServer) -> None:
    """result_backend_always_retry, the caller's store refusing connections when the notification comes:
    get(timeout=T) still raises on time (naming the store's error), and returns once the store is back."""
    from s3result.testing.faults import FaultProxy

    proxy = FaultProxy("127.0.0.1", moto_server.port, latency=0.0)
    url = caller.worker.url.replace(f"127.0.0.1:{moto_server.port}/", f"127.0.0.1:{proxy.port}/", 1)
    app = caller.app
    app.conf.result_backend_always_retry = True
    module = point_app_at(url, caller.worker.broker_dir, caller.broker, caller.namespace)
    try:
        assert module.sleepy.delay(0.05).get(timeout=60) == 0.05  # listening, store reachable
        delivered = caller.listener().delivered
        res = module.sleepy.delay(0.5)
        proxy.outage(4.5)
        start = time.monotonic()
        with pytest.raises(app.backend.TimeoutError, match="store was failing"):
            res.get(timeout=3.0)
        assert time.monotonic() - start < 3.0 + 3.0
        assert caller.listener().delivered > delivered, "the notification should have come during the outage"
        assert res.get(timeout=60) == 0.5
    finally:
        app.conf.result_backend_always_retry = False
        point_app_at(caller.worker.url, caller.worker.broker_dir, caller.broker, caller.namespace)
        proxy.close()


_POOL_OF_ONE = """
import json, threading, time
from s3result.waits import notify
from tests.e2e import app as m
m.app.conf.broker_pool_limit = 1
# A wait that blocks on the subscribe timeout would take 30 s: the bound below is a third of that.
notify.SUBSCRIBE_TIMEOUT = 30.0
out = {}

def holder():
    # This thread holds the pool's only connection (its producer) and waits inside it: its
    # reply_to cannot be bound over a pooled connection.
    with m.app.producer_or_acquire() as producer:
        res = m.sleepy.apply_async((0.1,), producer=producer)
        start = time.monotonic()
        out["holder"] = (res.get(timeout=120), time.monotonic() - start)

def later(name):
    start = time.monotonic()
    out[name] = (m.sleepy.delay(0.1).get(timeout=120), time.monotonic() - start)

later("warm")  # the listener is connected: a new thread's reply_to is bound by the wait that needs it
t = threading.Thread(target=holder); t.start(); t.join()
listener = notify.current_listener(m.app)
deadline = time.monotonic() + 20
while not listener._wanted <= listener._confirmed and time.monotonic() < deadline:
    time.sleep(0.05)
out["bound"] = sorted(listener._wanted - listener._confirmed) == []
delivered = listener.delivered
for name in ("main-1", "main-2"):
    later(name)
t = threading.Thread(target=later, args=("thread-3",)); t.start(); t.join()
out["woken"] = listener.delivered - delivered
print(json.dumps(out), flush=True)
"""


def test_a_failed_bind_is_retried_and_no_later_wait_pays(caller: Caller) -> None:
    """RabbitMQ: a wait whose bind cannot get a pooled connection (``broker_pool_limit=1``, held by
    its own thread) polls; the listener binds it; no later wait, on any thread, waits for it."""
    if not isinstance(caller.broker, RabbitMQServer):
        pytest.skip("binds are RabbitMQ's; a Redis subscription is made by the listener itself")
    proc = subprocess.run(
        [sys.executable, "-c", _POOL_OF_ONE], cwd=ROOT, env=caller.env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bound"], "the failed bind was never made again"
    for name in ("warm", "holder", "main-1", "main-2", "thread-3"):
        value, wall = out[name]
        assert value == 0.1
        assert wall < 10.0, f"{name} waited on the subscribe timeout (30 s): {out}"
    assert out["woken"] >= 2, f"later waits were not woken: {out}"


def test_a_flood_of_notifications_costs_one_get_per_interval(caller: Caller) -> None:
    """10,000 forged notifications naming a waited-on id: at most one read per poll interval for them."""
    reply_to = caller.app.thread_oid
    res = caller.module.sleepy.delay(3.0)
    done = threading.Event()

    def flood() -> None:
        if isinstance(caller.broker, RedisServer):
            import redis

            client = redis.Redis(port=caller.broker.port, db=caller.namespace % 16)
            payload = notifyformat.payload(res.id, "SUCCESS", '"forged"')
            for _ in range(10_000):
                client.publish(notify.CHANNEL_PREFIX + reply_to, payload)
        else:
            for _ in range(10_000):
                notify.publish(caller.app, reply_to, res.id, "SUCCESS", '"forged"')
        done.set()

    flooder = threading.Thread(target=flood)
    delivered = caller.listener().delivered
    value, gets, wall = caller.gets(lambda: (flooder.start(), res.get(timeout=120))[1])
    flooder.join(timeout=120)
    assert value == 3.0 and done.is_set()
    flooded = caller.listener().delivered - delivered
    assert flooded > 1000, f"only {flooded} notifications reached the listener: no flood to speak of"
    # Polls behind notifications (one per interval, 0.5 s) plus at most one notified read per interval.
    assert gets <= 2 * (math.ceil(wall / 0.5) + 1), (gets, wall, flooded)


def test_the_reconnect_back_off_starts_over_after_a_healthy_connection(tmp_path: Path) -> None:
    """A listener whose connection the broker drops again and again, each time after a healthy
    while, reconnects as fast every time: its back-off does not keep growing."""
    import redis
    from celery import Celery

    with RedisServer() as broker:
        app = Celery("backoff-reset", set_as_current=False)
        app.conf.broker_url = broker.url(0)
        app.conf.broker_transport_options = broker.transport_options(0)
        listener = notify.Listener(app, notify.broker_kind(app))
        client = redis.Redis(port=broker.port)
        notify.sent_from(app, "a-sending-thread")
        try:
            listener.watch(["some-task"], timeout=10).close()
            took = []
            for _ in range(7):
                time.sleep(1.5)  # a healthy while (longer than notify.HEALTHY_AFTER)
                epoch = listener.epoch
                assert client.client_kill_filter(_type="pubsub") == 1
                start = time.monotonic()
                while listener.epoch == epoch and time.monotonic() - start < 30:
                    time.sleep(0.01)
                took.append(time.monotonic() - start)
            # Doubling for good: 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5 s. Starting over: up to 0.1 s each.
            assert max(took) < 1.0, took
            assert notify.HEALTHY_AFTER < 1.5
        finally:
            listener.stop()
            notifyregistry._SENDERS.get().pop(id(app), None)


_MANY = """
import sys
from s3result.waits import notify
from tests.e2e import app as m
for _ in range(2):  # connect, subscribe, learn that notifications arrive
    assert m.sleepy.delay(0.01).get(timeout=60) == 0.01
print("ready", flush=True)
sys.stdin.readline()
sent = [m.sleepy.delay(0.05) for _ in range(int(sys.argv[1]))]
for res in sent:
    assert res.get(timeout=180) == 0.05
print("done", notify.current_listener(m.app).delivered, flush=True)
"""


def test_many_callers_at_once_cost_at_most_3_gets_per_wait(caller: Caller) -> None:
    """6 caller processes each send 25 tasks at once and wait for each in turn (the worker's queue
    grows; a wait may come before or after its notification): at most 3 GETs per wait, at the wire."""
    env = caller.env()
    env["E2E_BACKEND_URL"] = caller.app.conf.result_backend  # through the counting proxy
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MANY, "25"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        before = caller.proxy.snapshot()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        said = []
        for proc in procs:
            assert proc.stdout is not None
            said.append(proc.stdout.readline().split())
            assert proc.wait(timeout=180) == 0
        gets = (caller.proxy.snapshot() - before)["GET"]
    finally:
        for proc in procs:
            proc.kill()
    assert all(words[0] == "done" for words in said), said
    woken = sum(int(words[1]) for words in said)
    assert gets <= 3 * 150, f"{gets} GETs for 150 waits ({woken} notifications delivered)"


def _rabbitmqctl(broker: RabbitMQServer, *args: str) -> None:
    subprocess.run(
        ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "-n", broker._env["RABBITMQ_NODENAME"], *args],
        env=broker._env,
        capture_output=True,
        timeout=120,
        check=True,
    )


def test_a_rabbitmq_restart_while_a_caller_waits(caller: Caller) -> None:
    """The broker's app stops and starts again (every connection closed) mid-wait: the wait returns,
    and the caller is woken again soon after, with the back-off of this one outage only."""
    if not isinstance(caller.broker, RabbitMQServer):
        pytest.skip("Redis: test_a_redis_restart_while_callers_wait")
    res = caller.module.sleepy.delay(2.0)
    outcome: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: outcome.update(value=res.get(timeout=120)))
    waiter.start()
    time.sleep(0.3)
    _rabbitmqctl(caller.broker, "stop_app")
    time.sleep(1.0)
    _rabbitmqctl(caller.broker, "start_app")
    waiter.join(timeout=150)
    assert outcome.get("value") == 2.0, caller.worker.tail()
    deadline = time.monotonic() + 60
    delivered, tries = caller.listener().delivered, 0
    while caller.listener().delivered == delivered and time.monotonic() < deadline:
        tries += 1
        assert caller.module.sleepy.delay(0.05).get(timeout=60) == 0.05, caller.worker.tail()
    assert caller.listener().delivered > delivered, "the listener never came back after the restart"
    assert tries <= 20, f"{tries} waits before one was woken again"


def test_a_failed_part_wakes_the_caller_s_wait_for_the_body(caller: Caller) -> None:
    """A part fails once the caller waits on the body, polling every 120 s behind notifications:
    the part's FAILURE notification wakes the wait, whose check of the body's parents reads the
    part and raises its own error at once, not at the next look (the chord's end or the timeout)."""
    caller.warm()  # trusts notifications: polls every interval behind them
    header = [caller.module.part.s(i) for i in range(5)]
    header += [caller.module.sleepy.s(30), caller.module.slow_fail.s(2.0, "part broke while the caller waited")]
    res = chord(header)(caller.module.collect.s("failed-part-wakes"))
    woken = caller.listener().delivered
    start = time.monotonic()
    with pytest.raises(Exception, match="part broke while the caller waited") as raised:
        res.get(timeout=60, interval=120)
    took = time.monotonic() - start
    assert type(raised.value).__name__ == "Boom", caller.worker.tail()
    # Unwoken, the wait looks again only when the chord ends (its 30 s part) or at its timeout.
    assert took < 20.0, f"the part's error came after {took:.1f} s, not when the part failed (2 s)"
    assert caller.listener().delivered == woken  # no wait was on the part's own id


def test_a_body_failed_by_its_chord_wakes_a_wait_on_the_body_alone(caller: Caller) -> None:
    """The part that fails a chord's body (its join finds a failed part) stores the body's
    ChordError and notifies the chord's producer: a wait on the body id alone, with no check of
    parents and polling every 120 s behind notifications, gets the failure, not a timeout."""
    caller.warm()  # trusts notifications: polls every interval behind them
    header = [caller.module.part.s(i) for i in range(5)] + [caller.module.slow_fail.s(1.0, "part broke")]
    res = chord(header)(caller.module.collect.s("failed-body-notified"))
    start = time.monotonic()
    meta = caller.app.backend.wait_for(res.id, timeout=60, interval=120)
    took = time.monotonic() - start
    assert meta["status"] == "FAILURE", caller.worker.tail()
    assert "part broke" in repr(meta["result"]), meta
    # Unwoken, the wait looks again only at its timeout (its polls are 120 s apart).
    assert took < 20.0, f"the body's failure came after {took:.1f} s, not when the chord failed (1 s)"


def test_a_group_body_failed_by_its_chord_wakes_a_wait_on_a_member_of_it(caller: Caller) -> None:
    """A chord's body may be a group: Celery stores the ChordError on each of its members (the
    group's own id holds nothing), so those are the ids the producer waits on and must be woken for."""
    caller.warm()
    header = [caller.module.part.s(i) for i in range(5)] + [caller.module.slow_fail.s(1.0, "part broke")]
    body = group(caller.module.collect.s("group-body-a"), caller.module.collect.s("group-body-b"))
    res = chord(header)(body)
    member = res.results[0].id
    start = time.monotonic()
    meta = caller.app.backend.wait_for(member, timeout=60, interval=120)
    took = time.monotonic() - start
    assert meta["status"] == "FAILURE", caller.worker.tail()
    assert took < 20.0, f"the member's failure came after {took:.1f} s, not when the chord failed (1 s)"


def test_a_task_chained_after_a_failed_chord_wakes_a_wait_on_it(caller: Caller) -> None:
    """``chord(header, body) | after``: the producer's result is ``after``'s, which Celery fails
    with the body (``_fail_chain``); that failure is the one the producer waits on."""
    caller.warm()
    header = [caller.module.part.s(i) for i in range(5)] + [caller.module.slow_fail.s(1.0, "part broke")]
    res = (chord(header, caller.module.collect.s("chained-body")) | caller.module.part.s()).apply_async()
    start = time.monotonic()
    meta = caller.app.backend.wait_for(res.id, timeout=60, interval=120)
    took = time.monotonic() - start
    assert meta["status"] == "FAILURE", caller.worker.tail()
    assert took < 20.0, f"the chain's failure came after {took:.1f} s, not when the chord failed (1 s)"


def test_a_failed_part_is_read_at_once_while_the_header_stands_pending(
    caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header result read as pending stands a while (readahead); a part's FAILURE notification
    makes the caller's next check of the body's parents read that part again at once, so its own
    error arrives while another part of the chord still runs (20 s), not when the chord ends."""
    monkeypatch.setattr(readahead, "RATE", 0.001)  # pending answers stand for the whole wait
    monkeypatch.setattr(readahead, "PATIENCE", 600.0)
    header = [caller.module.part.s(i) for i in range(20)]
    header += [caller.module.sleepy.s(20), caller.module.slow_fail.s(1.0, "part broke late")]
    res = chord(header)(caller.module.collect.s("failed-part-notified"))
    with pytest.raises(Exception, match="part broke late") as raised:
        res.get(timeout=12, interval=0.2)
    assert type(raised.value).__name__ == "Boom", caller.worker.tail()
