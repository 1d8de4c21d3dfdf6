"""End to end on the brokers users deploy: Redis, RabbitMQ and SQS (the all-AWS stack, SQS + S3).

Each broker is a real server the tests start on 127.0.0.1 (tests/brokers.py); the workers are real
`celery worker` processes with ``acks_late`` and ``task_reject_on_worker_lost``. On every broker,
with the prefork pool: tasks, failures, retries, a group, native and ``chord_unlock`` chords,
``forget``, and a worker SIGKILLed in the middle of a chord. The thread pool runs the same on Redis.
SQS adds the visibility-timeout case: a task longer than the queue's visibility timeout is
delivered to a second worker while the first still runs.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import chord, group
from celery.exceptions import TimeoutError as ResultTimeout

from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.store import MotoServer
from tests.brokers import Broker, SqsStack, Tuned

from .conftest import Worker, for_worker

pytestmark = pytest.mark.e2e

_FIXTURE = {"redis": "redis_broker", "rabbitmq": "rabbitmq_broker", "sqs": "sqs_stack"}
# Every feature on every broker with prefork; the thread pool on one broker.
COMBOS = [("redis", "prefork"), ("rabbitmq", "prefork"), ("sqs", "prefork"), ("redis", "threads")]
_namespaces = itertools.count(1)


@dataclass
class Stack:
    """One broker, the result store it goes with, and a place where chord bodies record their runs."""

    broker: Broker
    moto: MotoServer
    prefix: str
    calls: Path

    def backend_url(self, **query: str) -> str:
        if isinstance(self.broker, SqsStack):
            return self.broker.backend_url(f"{self.broker.prefix}/{self.prefix}", **query)
        q = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        return self.moto.url(prefix=self.prefix) + q

    def store_client(self) -> S3Client:
        """A direct client on the results' store, to look at stored objects."""
        return S3Client(config.build(url=self.backend_url(), environ={}).s3)

    def key(self, task_id: str) -> str:
        prefix = f"{self.broker.prefix}/{self.prefix}" if isinstance(self.broker, SqsStack) else self.prefix
        return f"{prefix}/celery-task-meta-{task_id}"

    def worker(self, tmp: Path, *, pool: str = "prefork", name: str = "w1", **kw: Any) -> Worker:
        env = {"E2E_CALLS_DIR": str(self.calls), **kw.pop("extra_env", {})}
        url = kw.pop("url", None) or self.backend_url(conditional_writes="etag")
        return Worker(url, tmp, pool=pool, name=name, broker=kw.pop("broker", self.broker), extra_env=env, **kw)

    def runs(self, marker: str) -> list[Path]:
        return sorted(self.calls.glob(f"{marker}.*"))


def _stack(request: pytest.FixtureRequest, name: str, moto_server: MotoServer, tmp: Path) -> Stack:
    broker = request.getfixturevalue(_FIXTURE[name])
    calls = tmp / "calls"
    calls.mkdir(exist_ok=True)
    return Stack(broker, moto_server, f"brokers-{name}-{uuid.uuid4().hex[:6]}", calls)


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{b}-{p}" for b, p in COMBOS])
def running(
    request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Worker]]:
    """A worker per (broker, pool), started once for all the tests of that combination."""
    name, pool = request.param
    tmp = tmp_path_factory.mktemp(f"{name}-{pool}")
    stack = _stack(request, name, moto_server, tmp)
    # A name of its own: pytest may keep this worker running through other tests of the module,
    # and RabbitMQ's remote-control queue (exclusive, named after the worker) allows one of each name.
    w = stack.worker(
        tmp, pool=pool, name=f"{name}-{pool}", concurrency=2 if pool == "prefork" else 4, namespace=next(_namespaces)
    )
    w.start()
    yield stack, w
    w.stop()


@pytest.fixture
def app(running: tuple[Stack, Worker]) -> Any:
    return for_worker(running[1])


def test_task_failure_and_retries(app: Any) -> None:
    assert app.add.delay(2, 3).get(timeout=60) == 5
    res = app.fail.delay("broken on purpose")
    with pytest.raises(app.Boom, match="broken on purpose"):
        res.get(timeout=60)
    assert res.state == "FAILURE"
    # Two retries, each one a new message through the broker, then SUCCESS.
    assert app.flaky.delay(2).get(timeout=60) == 2


def test_group(app: Any) -> None:
    g = group(app.add.s(i, i) for i in range(20)).apply_async()
    assert g.get(timeout=120) == [i + i for i in range(20)]


def test_native_chord_body_runs_once(app: Any, running: tuple[Stack, Worker]) -> None:
    stack, worker = running
    assert app.app.backend.native_chords
    marker = f"native-{uuid.uuid4().hex[:8]}"
    res = chord(app.part.s(i) for i in range(20))(app.collect.s(marker))
    assert res.get(timeout=120, interval=0.2) == sum(range(20)), worker.tail()
    time.sleep(0.5)  # room for a second (wrong) firing to show up
    assert len(stack.runs(marker)) == 1


def test_forget(app: Any, running: tuple[Stack, Worker]) -> None:
    stack = running[0]
    res = app.add.delay(1, 1)
    assert res.get(timeout=60) == 2
    client = stack.store_client()
    assert client.get_or_none(stack.key(res.id)) is not None
    res.forget()
    assert client.get_or_none(stack.key(res.id)) is None
    assert app.app.AsyncResult(res.id).state == "PENDING"


def test_worker_imports_boto_only_for_sqs(app: Any, running: tuple[Stack, Worker]) -> None:
    """The backend is boto-free: a worker on Redis or RabbitMQ has no boto module loaded at all.

    On SQS kombu's transport itself needs boto3, which shows that the check sees boto when it is there.
    """
    loaded = app.loaded_boto.delay().get(timeout=60)
    if running[0].broker.name == "sqs":
        assert "botocore" in loaded
    else:
        assert loaded == []


@pytest.mark.parametrize("name", ["redis", "rabbitmq", "sqs"])
def test_chord_unlock_chords(
    name: str, request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path: Path
) -> None:
    """conditional_writes=disabled on producer and workers: Celery's chord_unlock task, retried via the broker."""
    stack = _stack(request, name, moto_server, tmp_path)
    url = stack.backend_url(conditional_writes="disabled")
    w = stack.worker(tmp_path, url=url, name=f"unlock-{name}", namespace=next(_namespaces))
    w.start()
    try:
        module = for_worker(w)
        assert not module.app.backend.native_chords
        marker = f"unlock-{uuid.uuid4().hex[:8]}"
        res = chord(module.part.s(i) for i in range(20))(module.collect.s(marker))
        assert res.get(timeout=120, interval=0.2) == sum(range(20)), w.tail()
        time.sleep(0.5)
        assert len(stack.runs(marker)) == 1
    finally:
        w.stop()


def _chord_objects(module: Any, res: Any) -> str:
    """What the store holds of a chord: its counter, its tree's nodes and each part's state (for a
    failure's message: where the count stopped, or that it fired and the body never ran)."""
    from s3result.chords import geometry

    backend = module.app.backend
    parts = res.parent.results
    root = backend.store.key(backend.get_key_for_chord(res.parent.id))
    lines = []
    try:
        tree = geometry.Geometry.fit(len(parts))
        keys = [root] + [geometry.node_key(root, lv, n) for lv, ns in enumerate(tree.levels[:-1]) for n in ns]
        for key in keys:
            found = backend.client.get_or_none(key)
            lines.append(f"{key}: {None if found is None else found.body[:600]!r}")
        states = [backend.get_task_meta(p.id, cache=False)["status"] for p in parts]
        lines.append(f"parts: {states}; body {backend.get_task_meta(res.id, cache=False)['status']}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic only
        lines.append(f"(could not read: {exc!r})")
    return "\n".join(lines)


KILLS = [
    ("redis", "child"),
    ("rabbitmq", "child"),
    ("sqs", "child"),
    ("redis", "worker"),
    ("rabbitmq", "worker"),
    ("sqs", "worker"),
]


@pytest.mark.parametrize(("name", "what"), KILLS, ids=[f"{n}-{w}" for n, w in KILLS])
def test_sigkill_mid_chord_body_runs_once(
    name: str, what: str, request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path: Path
) -> None:
    """A worker is SIGKILLed in the middle of a chord; the body still runs exactly once, with every part.

    ``child``: the pool process running a part dies before storing it; the worker sees
    WorkerLostError and, with ``acks_late`` and ``task_reject_on_worker_lost``, gives the message
    back at once. ``worker``: a part is stored and counted, then the whole worker dies (every process
    of it) before the acknowledgement; the broker delivers its unacknowledged messages to the other
    worker (RabbitMQ when the connection drops; Redis and SQS after the visibility timeout, 5 s
    here), so that part runs and is counted a second time.
    """
    stack = _stack(request, name, moto_server, tmp_path)
    broker = stack.broker
    if name == "sqs":
        broker = Tuned(broker, visibility_timeout=5)
    elif name == "redis":  # and sweep for expired deliveries every second (default: every 100 s)
        broker = Tuned(broker, visibility_timeout=5, unacked_restore_interval=1, unacked_restore_throttle=1)
    ns = next(_namespaces)
    env = {
        "E2E_KILL_MARKER": str(tmp_path / "killed"),
        "E2E_KILL_PART": "2",
        "E2E_KILL_WHAT": what,
        "E2E_TEST_PGRP": str(os.getpgrp()),
    }
    workers = [
        stack.worker(
            tmp_path, name=f"kill-{name}-{what}-{i}", broker=broker, namespace=ns, extra_env=env, new_session=True
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
    try:
        module = for_worker(workers[0])
        marker = f"kill-{uuid.uuid4().hex[:8]}"
        # The last part takes 12 s: the part delivered again (after up to ~6 s) is counted while it
        # still runs, so a second count would fire the body early, and its join of the results
        # (result_chord_join_timeout, 3 s) would give up on the last part.
        seconds = [0.5] * 19 + [12.0] if what == "worker" else [0.0] * 20
        res = chord(module.slow_part.s(i, seconds[i]) for i in range(20))(module.collect.s(marker))
        try:
            assert res.get(timeout=180, interval=0.2) == sum(range(20))
        except ResultTimeout:
            logs = "\n".join(w.log.read_text(errors="replace") for w in workers)
            pytest.fail(
                f"the chord never completed; its objects in the store:\n{_chord_objects(module, res)}\n"
                f"the workers' logs end with:\n{logs[-12000:]}"
            )
        finally:
            logs = "\n".join(w.log.read_text(errors="replace") for w in workers)
        time.sleep(1.0)  # room for a second (wrong) firing to show up
        # Celery's own warning when a chord's count goes past its size: a part was counted twice.
        assert "Chord counter incremented too many times" not in logs
        assert (tmp_path / "killed").exists(), "the chosen part never ran: nothing was killed"
        assert len(list(stack.calls.glob("killpart.*"))) >= 2, "the killed part was not delivered again"
        runs = stack.runs(marker)
        # What the backend promises is one publication of the body. Redis gives back any message
        # left unacknowledged for its visibility timeout (5 s, set above), including the body's
        # while it waits in a busy worker's reserve or runs late (acks_late): that second delivery
        # of the same message is the broker's at-least-once (it would happen with any backend),
        # marked redelivered by kombu. Two publications would be two fresh deliveries.
        fresh = [r for r in runs if not r.name.startswith(f"{marker}.redelivered-")]
        assert len(fresh) == 1, f"chord body published {len(fresh)} times ({len(runs)} runs)\n{logs[-4000:]}"
        assert all(r.read_text() == ",".join(map(str, range(20))) for r in runs)
    finally:
        for w in workers:
            w.stop()


def test_sqs_visibility_timeout_second_delivery_never_replaces_success(
    sqs_stack: SqsStack, moto_server: MotoServer, tmp_path: Path
) -> None:
    """A task longer than the queue's visibility timeout runs on two workers at once.

    SQS makes the message visible again after 2 s while the first worker still runs the 6 s task;
    the second worker receives it and runs it too. The first run to finish stores SUCCESS; the
    later one finds it there and leaves it (If-None-Match, then a read: never a replacing write).
    The stored value names the run that wrote it, and the object's ETag does not change after
    every run has finished.
    """
    calls = tmp_path / "calls"
    calls.mkdir()
    stack = Stack(sqs_stack, moto_server, f"vis-{uuid.uuid4().hex[:6]}", calls)
    broker = Tuned(sqs_stack, visibility_timeout=2)
    ns = next(_namespaces)
    workers = [stack.worker(tmp_path, name=f"vis-{i}", broker=broker, namespace=ns, concurrency=1) for i in range(2)]
    for w in workers:
        w.start()
    try:
        module = for_worker(workers[0])
        marker = f"vis-{uuid.uuid4().hex[:8]}"
        res = module.record.delay(6.0, marker)
        stored = res.get(timeout=60)
        client = stack.store_client()
        first = client.get_or_none(stack.key(res.id))
        assert first is not None
        deadline = time.monotonic() + 60
        while len(stack.runs(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # the later run's write, if any, lands after its run file
        runs = stack.runs(marker)
        logs = "\n".join(w.tail(3000) for w in workers)
        assert len(runs) >= 2, f"the task was not delivered to a second worker: {logs}"
        last = client.get_or_none(stack.key(res.id))
        assert last is not None and last.etag == first.etag, "a later run replaced the stored SUCCESS"
        meta = module.app.backend.get_task_meta(res.id, cache=False)
        assert meta["status"] == "SUCCESS" and meta["result"] == stored
        # The value is the first run to finish's own ("marker:pid"): the later run changed nothing.
        first_done = min(runs, key=lambda p: float(p.read_text()))
        assert stored == f"{marker}:{first_done.name.split('.')[1]}"
    finally:
        for w in workers:
            w.stop()
