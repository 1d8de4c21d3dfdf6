"""The Celery app the end-to-end tests run in real worker processes.

Configured from the environment by the test fixture: E2E_BACKEND_URL (the s3result URL of a
server the tests started) and E2E_BROKER_DIR (kombu's filesystem transport: no broker server), or
E2E_BROKER_URL, E2E_BROKER_OPTIONS (JSON transport options) and E2E_QUEUE (the queue of this set of
workers, so that workers of other tests on the same broker never take its tasks) for a real broker
(tests/brokers.py).
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from typing import Any

from celery import Celery

# SIGUSR2 writes every thread's Python stack to the worker's log from the signal itself, even when
# the thread that would run a Python handler is blocked (a stuck test sends it before it fails).
faulthandler.register(signal.SIGUSR2, all_threads=True)

app = Celery("e2e")
_broker_dir = os.environ.get("E2E_BROKER_DIR", "/tmp/s3result-e2e-broker")
app.conf.update(
    broker_url="filesystem://",
    # kombu's filesystem transport, with atomic writes (see s3result.testing.fsbroker): no broker server.
    broker_transport="s3result.testing.fsbroker:Transport",
    broker_transport_options={
        "data_folder_in": _broker_dir,
        "data_folder_out": _broker_dir,
        "processed_folder": os.path.join(_broker_dir, "processed"),
        # Fanout tables (worker control, pidbox): in the test's folder, never the current directory.
        "control_folder": os.path.join(_broker_dir, "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    },
    result_backend=os.environ.get("E2E_BACKEND_URL", "s3result://unset-bucket"),
    result_extended=os.environ.get("E2E_RESULT_EXTENDED", "") == "1",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # The soak test turns Celery's own retry loop on, to ride out a 30 s store outage.
    result_backend_always_retry=os.environ.get("E2E_ALWAYS_RETRY", "") == "1",
    result_backend_max_retries=200,
    result_backend_base_sleep_between_retries_ms=100,
    result_backend_max_sleep_between_retries_ms=2000,
    # A prefork child per task (tests/e2e/test_requests.py): the probe's verdict must be inherited.
    worker_max_tasks_per_child=int(os.environ.get("E2E_MAX_TASKS_PER_CHILD") or 0) or None,
    # benchmarks/chords.py: chord_unlock's join of 10,000 results needs more than Celery's 3 s.
    result_chord_join_timeout=float(os.environ.get("E2E_CHORD_JOIN_TIMEOUT", "3.0")),
)
if os.environ.get("E2E_BROKER_URL"):
    # A real broker (Redis, RabbitMQ, SQS): a worker killed mid-task gets its task delivered again.
    app.conf.update(
        broker_url=os.environ["E2E_BROKER_URL"],
        broker_transport=None,
        broker_transport_options=json.loads(os.environ.get("E2E_BROKER_OPTIONS", "{}")),
        task_reject_on_worker_lost=True,
        task_default_queue=os.environ.get("E2E_QUEUE", "celery"),
    )


class Boom(ValueError):
    """A user exception whose type and message must survive the round trip."""


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise Boom(message)


@app.task
def slow_fail(seconds: float, message: str) -> None:
    """A part that fails once the caller is already waiting."""
    time.sleep(seconds)
    raise Boom(message)


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task
def echo(value: Any) -> Any:
    return value


@app.task
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


_calls_dir = os.environ.get("E2E_CALLS_DIR", "")


@app.task
def part(i: int) -> int:
    return i


@app.task(bind=True)
def collect(self: Any, values: list[int], marker: str) -> int:
    """A chord body that records each time it runs, so a test can count invocations.

    A run from a message the broker gave back (Redis after its visibility timeout, RabbitMQ
    after a dropped connection: ``delivery_info["redelivered"]``) is named ``<marker>.redelivered-*``:
    a test can tell one publication delivered twice from two publications.
    """
    import uuid

    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    if _calls_dir:
        name = f"{marker}.{'redelivered-' if redelivered else ''}{uuid.uuid4().hex}"
        with open(os.path.join(_calls_dir, name), "w") as f:
            f.write(",".join(map(str, sorted(values))))
    return sum(values)


@app.task(track_started=True)
def tracked(x: int) -> int:
    """Stores STARTED, then SUCCESS: two states of one task, written by one worker process."""
    return x


@app.task
def loaded_boto() -> list[str]:
    """The boto modules this worker process has imported (none, on a Redis or AMQP broker)."""
    return sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore", "boto", "s3transfer"))


@app.task(bind=True, max_retries=5)
def flaky(self: Any, fail_times: int) -> int:
    """Fails ``fail_times`` times and is retried through the broker each time, then succeeds."""
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.1)
    return int(self.request.retries)


@app.task
def record(seconds: float, marker: str) -> str:
    """Sleeps, records one run (a file per run, named with this process's id), returns "marker:pid".

    The visibility-timeout test counts the runs: SQS hands the message to a second worker while
    the first one still sleeps.
    """
    import uuid

    time.sleep(seconds)
    if _calls_dir:
        with open(os.path.join(_calls_dir, f"{marker}.{os.getpid()}.{uuid.uuid4().hex}"), "w") as f:
            f.write(str(time.time()))
    return f"{marker}:{os.getpid()}"


@app.task
def slow_part(i: int, seconds: float) -> int:
    """A chord part that takes a while, so the chord is still running when a part is delivered again."""
    time.sleep(seconds)
    return i


_kill_marker = os.environ.get("E2E_KILL_MARKER", "")


def _kill_once(task: Any, args: Any) -> None:
    """SIGKILL this worker once, when it runs the chosen chord part (E2E_KILL_PART).

    Each run of that part is recorded (the test checks it was delivered again); E2E_KILL_MARKER,
    a file created exclusively, makes the kill happen once among all the workers.
    """
    if task is None or task.name not in (part.name, slow_part.name) or args[0] != int(os.environ["E2E_KILL_PART"]):
        return
    import uuid

    if _calls_dir:
        open(os.path.join(_calls_dir, f"killpart.{os.getpid()}.{uuid.uuid4().hex}"), "w").close()
    try:
        fd = os.open(_kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    if os.environ.get("E2E_KILL_WHAT") == "worker" and os.getpgrp() != int(os.environ["E2E_TEST_PGRP"]):
        # The whole worker (started in a session of its own): parent and every pool process. Not at
        # the instant this part ends: the worker's other process ends its part then too (the parts
        # take 0.5 s each, taken in pairs), and its main process is fetching the next message. On
        # Redis, kombu pops a message (BRPOP), then records it as unacknowledged: SIGKILL between the
        # two loses it for good (kombu#305, #1836), and no backend completes a chord whose part was
        # never delivered (seen in CI: part 4 reached no worker). Half a part later, nothing is in flight.
        time.sleep(0.25)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # this pool process only: the parent sees WorkerLostError


if _kill_marker and os.environ.get("E2E_KILL_WHAT") == "worker":
    from celery.signals import task_postrun

    @task_postrun.connect
    def _kill_worker_after_a_counted_part(sender: Any = None, task: Any = None, args: Any = None, **_: Any) -> None:
        """The whole worker dies right after a part was stored and counted, before its ack.

        ``task_postrun`` runs after the result is stored and the chord counted, and before the
        message is acknowledged (``acks_late``): the broker delivers the part again, so it is
        counted twice unless counting is idempotent per part.
        """
        _kill_once(task, args)


if _kill_marker and os.environ.get("E2E_KILL_WHAT") == "child":
    from celery.signals import task_prerun

    @task_prerun.connect
    def _kill_pool_process_mid_part(sender: Any = None, task: Any = None, args: Any = None, **_: Any) -> None:
        """The pool process running a part dies before the part's result is stored.

        With ``acks_late`` and ``task_reject_on_worker_lost`` the worker gives the message back and
        the part runs again. (Killed after its result was stored, Celery acknowledges it instead:
        "succeeded before the worker was lost", so that case is the whole-worker one above.)
        """
        _kill_once(task, args)


if os.environ.get("E2E_KILL_IN_TURN"):
    # tests/e2e/test_chord_turns.py: every thread takes turns as if its counts had lost a race,
    # and the pool process running part E2E_KILL_IN_TURN is SIGKILLed as it starts to wait its
    # turn (once among all workers: E2E_KILL_MARKER), before its result is stored.
    import math

    from s3result.chords import turns as _turns

    _turns.CONTENDED_S = math.inf
    _wait_s = _turns.Turns.wait_s

    def _kill_in_turn(self: Any, tree: Any, index: int, group_id: str, now: float) -> float:
        self.put_s = 0.04  # a turn of 0.12 s, as if this process had stored results 40 ms away
        self.idle_before = lambda: math.inf  # and came to the chord idle
        if index == int(os.environ["E2E_KILL_IN_TURN"]):
            getattr(self._local, "kept", {}).pop(group_id, None)  # its own start: a wait of 4 turns
        seconds = _wait_s(self, tree, index, group_id, now)
        if seconds > 0 and index == int(os.environ["E2E_KILL_IN_TURN"]):
            try:
                fd = os.open(_kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return seconds
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return seconds

    _turns.Turns.wait_s = _kill_in_turn  # type: ignore[method-assign]


# -- chords: canvas shapes and duplicate deliveries (tests/e2e/test_chord_shapes.py, test_chords.py) --


@app.task
def nsum(values: Any) -> int:
    """Sum nested lists: a chord body whose header holds groups gets lists in its list."""
    if isinstance(values, list):
        return sum(nsum(v) for v in values)
    return int(values)


@app.task(bind=True)
def replaced(self: Any, x: int) -> Any:
    """A header task that replaces itself (Task.replace keeps its id, group and chord)."""
    return self.replace(add.si(x, 10))


_dup_percent = int(os.environ.get("E2E_DUP_PERCENT", "0"))


@app.task(bind=True)
def dpart(self: Any, i: int) -> int:
    """A chord part; for E2E_DUP_PERCENT of task ids, the first run sends its own message again.

    The copy has the same task id, group, group index and chord: the broker delivers the
    part twice, as it does after a lost ack or a worker killed mid-task.
    """
    tid = self.request.id
    if _dup_percent and _calls_dir and int(tid.replace("-", "")[:8], 16) % 100 < _dup_percent:
        try:
            fd = os.open(os.path.join(_calls_dir, f"dup-{tid}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            self.apply_async(
                args=self.request.args,
                kwargs=self.request.kwargs,
                task_id=tid,
                group_id=self.request.group,
                group_index=self.request.group_index,
                chord=self.request.chord,
            )
    return i


# -- the completing part's worker killed around the body's publishing (tests/e2e/test_chord_lease.py) --

if os.environ.get("E2E_CHORD_LEASE"):
    from s3result.backend import S3Backend

    S3Backend.chord_lease = float(os.environ["E2E_CHORD_LEASE"])

if os.environ.get("E2E_CHORD_TURNS") == "0":  # benchmarks/chords.py --modes plain
    from s3result.backend import S3Backend

    S3Backend.chord_turns = False

if _kill_marker and os.environ.get("E2E_KILL_FIRING") in ("before", "after", "climb"):
    from s3result.chords.firing import ChordFiring

    def _kill_worker_once() -> None:
        """SIGKILL the whole worker (its own session), once among all the workers."""
        try:
            fd = os.open(_kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        if os.getpgrp() != int(os.environ["E2E_TEST_PGRP"]):
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.environ["E2E_KILL_FIRING"] == "climb":
        from s3result.chords import tree as _chordtree

        _add = _chordtree.TreeCounter.add_and_read

        def _kill_above_the_leaf(self: Any, root_key: str, geometry: Any, level: int, *args: Any) -> Any:
            """Killed after completing a leaf of a chord's tree, before counting it in its parent."""
            if level > 0:
                _kill_worker_once()
            return _add(self, root_key, geometry, level, *args)

        _chordtree.TreeCounter.add_and_read = _kill_above_the_leaf  # type: ignore[method-assign]
    elif os.environ["E2E_KILL_FIRING"] == "before":
        _fire = ChordFiring.fire

        def _fire_after_kill(self: Any, *args: Any, **kwargs: Any) -> Any:
            """Killed after the completing write, before publishing the body."""
            _kill_worker_once()
            return _fire(self, *args, **kwargs)

        ChordFiring.fire = _fire_after_kill  # type: ignore[method-assign]
    else:
        _clean = ChordFiring.clean_up

        def _kill_before_clean_up(self: Any, *args: Any) -> None:
            """Killed after publishing the body, before deleting the counter."""
            _kill_worker_once()
            _clean(self, *args)

        ChordFiring.clean_up = _kill_before_clean_up  # type: ignore[method-assign]


# -- notifications lost on the way (tests/e2e/test_notify.py) --

if os.environ.get("E2E_DROP_NOTIFY"):
    from s3result.waits import notify as _notify

    _publish = _notify.publish

    def _drop_some(app: Any, reply_to: str, task_id: str, state: str, etag: str | None) -> bool:
        """The notification of a task whose id starts with ``drop-`` is lost (stored, never sent)."""
        if task_id.startswith("drop-"):
            return False
        return _publish(app, reply_to, task_id, state, etag)

    _notify.publish = _drop_some
