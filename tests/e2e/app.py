"""The Celery app the end-to-end tests run in real worker processes.

Configured from the environment by the test fixture: E2E_BACKEND_URL (the s3result URL of a
server the tests started) and E2E_BROKER_DIR (kombu's filesystem transport: no broker server).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

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


@app.task
def collect(values: list[int], marker: str) -> int:
    """A chord body that records each time it runs, so a test can count invocations."""
    import uuid

    if _calls_dir:
        with open(os.path.join(_calls_dir, f"{marker}.{uuid.uuid4().hex}"), "w") as f:
            f.write(",".join(map(str, sorted(values))))
    return sum(values)


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
