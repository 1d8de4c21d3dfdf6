"""``s3result demo``: the embedded store, a real worker, and the requests counted at the wire.

It starts a moto server (auth on) and a prefork worker, runs a task, a failing task, a group
and a chord, and prints the results, the S3 requests counted at the wire (the worker's and
this process's apart, on two counting proxies) next to what ``s3result cost``'s arithmetic
predicts for the same work, and the cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any, TextIO

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step gave its expected result."""
    from ..testing.proxy import CountingProxy
    from ..testing.store import MotoServer

    out = sys.stdout
    with MotoServer(bucket="s3result-demo") as store, tempfile.TemporaryDirectory() as broker:
        # Two counting proxies in front of one store: the worker's requests and the caller's
        # (the demo's own waits) are counted apart, and the caller's pace is timed.
        workers = CountingProxy(store.host, store.port, record_times=True)
        caller = CountingProxy(store.host, store.port, record_times=True)

        def url(proxy: CountingProxy) -> str:
            return f"s3result+http://{store.access_key}:{store.secret_key}@127.0.0.1:{proxy.port}/{store.bucket}/demo"

        out.write(f"embedded S3 store: moto server with SigV4 auth on, {store.endpoint}, bucket {store.bucket!r}\n")
        env = dict(os.environ, S3RESULT_DEMO_BACKEND=url(workers), S3RESULT_DEMO_BROKER=broker)
        os.environ.update(S3RESULT_DEMO_BACKEND=url(caller), S3RESULT_DEMO_BROKER=broker)
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "s3result.cli.demo_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-l",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        # The worker's log goes to a file: an unread pipe would block the worker once full.
        log = tempfile.TemporaryFile()
        worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            return _run_demo(out, workers, caller, worker, log)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            workers.close()
            caller.close()
            log.close()


def _run_demo(out: TextIO, workers: Any, caller: Any, worker: subprocess.Popen[bytes], log: Any) -> int:
    from celery import chord, group
    from celery.exceptions import TimeoutError as CeleryTimeout

    from . import demo_app as demo
    from .cost import PRICE_GET_PER_1000, PRICE_PUT_PER_1000

    out.write(f"celery worker: prefork, concurrency 2, pid {worker.pid}\n\n")
    out.flush()
    backend = demo.app.backend
    try:
        first = demo.add.delay(2, 3)
        out.write(f"add(2, 3)                 = {first.get(timeout=120)}\n")
    except CeleryTimeout:
        log.seek(0)
        out.write(
            f"the worker did not run the first task within 120 s; its log ends with:\n{log.read()[-2000:].decode(errors='replace')}\n"
        )
        return 1
    # From here on, every request at the wire is the workload's, and the model predicts it.
    start_workers, start_caller = workers.kinds.copy(), caller.kinds.copy()
    began: dict[str, float] = {}  # when the wait for each result began
    failing = demo.fail.delay("this task fails on purpose")
    began[failing.id] = time.time()
    try:
        failing.get(timeout=60)
    except demo.DemoError as exc:
        out.write(f"fail(...)                 raised {type(exc).__name__}({str(exc)!r}), state {failing.state}\n")
    g = group(demo.add.s(i, i) for i in range(20)).apply_async()
    began.update(dict.fromkeys((r.id for r in g.results), time.time()))
    out.write(f"group of 20 x add(i, i)   = {g.get(timeout=60)}\n")
    c = chord(demo.add.s(i, 1) for i in range(10))(demo.tsum.s())
    began[c.id] = time.time()
    waited_from = len(caller.requests)
    out.write(f"chord of 10, tsum body    = {c.get(timeout=120)}\n\n")
    # The firing part deletes the chord's counter and saved group after it published the body:
    # its clean-up may still be on the wire when the body's result is read. Count it too.
    settle = time.monotonic() + 5.0
    while (workers.kinds - start_workers)["DELETE chord-unlock"] < 1 and time.monotonic() < settle:
        time.sleep(0.05)
    while (workers.kinds - start_workers)["DELETE celery-taskset-meta"] < 1 and time.monotonic() < settle:
        time.sleep(0.05)
    pace = _pace([arrived for arrived, _, _ in caller.requests[waited_from:]])
    stored = _stored_at(workers.requests)
    by_worker = Counter({k: n for k, n in (workers.kinds - start_workers).items() if not k.endswith(" other")})
    seen = (workers.kinds - start_workers) + (caller.kinds - start_caller)
    measured = Counter({k: n for k, n in seen.items() if not k.endswith(" other")})  # not the probe
    probes = sum(seen.values()) - sum(measured.values())
    # The counter's and its tree's PUTs per part: their contention is an input, like durations.
    cas_rounds = (measured.get("PUT chord-unlock", 0) + measured.get("PUT chord-unlock-node", 0)) / 10
    model = _demo_model(began, stored, pace, failing, g, c, cas_rounds)

    # Requests per operation, counted at the wire.
    before = caller.total
    demo.app.AsyncResult(first.id).get(timeout=10)
    reads = caller.total - before
    before = caller.total
    demo.app.AsyncResult("no-such-task-yet").state  # noqa: B018 - a pending poll
    polls = caller.total - before
    before = caller.total
    backend.store_result("demo-write-probe", 42, "SUCCESS")
    writes = caller.total - before
    backend.forget("demo-write-probe")

    tasks = 1 + 20 + 10 + 1
    by_method: Counter[str] = Counter()
    for kind, n in measured.items():
        by_method[kind.split(" ", 1)[0]] += n
    total = sum(by_method.values())
    per_method = ", ".join(f"{m} {n}" for m, n in sorted(by_method.items()))
    gets = by_method.get("GET", 0) + by_method.get("HEAD", 0)
    puts = by_method.get("PUT", 0)
    cost = puts / 1000 * PRICE_PUT_PER_1000 + gets / 1000 * PRICE_GET_PER_1000
    predicted = model.puts / 1000 * PRICE_PUT_PER_1000 + model.gets / 1000 * PRICE_GET_PER_1000
    out.write(
        f"S3 requests, counted at the wire: {total} ({per_method}) for {tasks} tasks, their waits and a chord "
        f"(and {probes} for the conditional-write probe, once per process)\n"
    )
    out.write(
        f"  by the worker {by_worker.total()}; by this process {total - by_worker.total()} "
        "(the chord's set-up and the waits: polls, and Celery's checks of the chord's parts)\n"
    )
    out.write(
        f"s3result cost's arithmetic for the same work: {model.total:.0f} "
        f"(DELETE {model.deletes:.0f}, GET {model.gets:.0f}, PUT {model.puts:.0f}), "
        f"given the task times, {pace * 1000:.1f} ms per request at the caller "
        f"and the chord counter's {cas_rounds:.1f} compare-and-swap rounds per part\n"
    )
    out.write(f"requests per result read: {reads}; per pending poll: {polls}; per stored result: {writes}\n")
    out.write(
        f"cost at AWS S3 Standard list prices (PUT ${PRICE_PUT_PER_1000}/1000, GET ${PRICE_GET_PER_1000}/1000): "
        f"${cost:.6f} for this demo, about ${cost / tasks * 1_000_000:.2f} per million tasks "
        f"(the arithmetic says ${predicted / tasks * 1_000_000:.2f})\n"
    )
    return 0


def _pace(arrivals: list[float]) -> float:
    """Seconds per request of one caller reading results back to back: the median gap
    between its requests (most are the reads of a chord's parent check; the gaps that
    hold a poll's sleep are the few long ones)."""
    gaps = sorted(later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False))
    return gaps[len(gaps) // 2] if gaps else 0.0


def _stored_at(requests: list[tuple[float, str, str]]) -> dict[str, float]:
    """When each task's last state (its result) reached the store: its last PUT at the wire."""
    marker = "celery-task-meta-"
    stored: dict[str, float] = {}
    for arrived, method, target in requests:
        if method == "PUT" and marker in target:
            stored[target.rsplit(marker, 1)[1].split("?", 1)[0]] = arrived
    return stored


def _demo_model(
    began: dict[str, float],
    stored: dict[str, float],
    pace: float,
    failing: Any,
    g: Any,
    c: Any,
    cas_rounds: float,
) -> Any:
    """``s3result cost``'s arithmetic for the demo's workload.

    The inputs are what a user would know of their own workload: when each result was stored
    after the call (here: when its PUT reached the store, seen at the wire), how long one
    request takes the caller while workers write (``pace``), and the chord counter's contention.
    """
    from .cost import Requests, chord_requests, chord_wait_gets, join_gets, task_requests

    def took(result: Any, since: float) -> float:
        return max(0.0, stored[result.id] - since) if result.id in stored else 0.0

    model = task_requests(duration=took(failing, began[failing.id]), latency=pace)
    model += task_requests(waited=0) * len(g.results)
    model += Requests(gets=join_gets([took(r, began[r.id]) for r in g.results], latency=pace))
    parts = c.parent.results
    start = began[c.id]
    model += task_requests(waited=0) * (len(parts) + 1) + chord_requests(len(parts), cas_rounds=cas_rounds)
    model += Requests(gets=chord_wait_gets(took(c, start), [took(r, start) for r in parts], latency=pace, sender=True))
    return model
