"""Waiting for results: adaptive polling against fixed polling and Celery's built-in S3 backend.

    python -m benchmarks.waits           # prints a section; benchmarks.run puts it in RESULTS.md
    python -m benchmarks.waits --brokers # waking over Redis and RabbitMQ, against Celery's own backends
    python -m benchmarks.waits --callers 20x50  # many caller processes at once, against redis://

One moto server and one real worker (threads pool, 100 threads, on the e2e filesystem
broker) that stores results with s3result. Three clients wait for the same kind of tasks,
taking turns: s3result with its defaults (adaptive polling), s3result with
``poll_initial_delay=off`` (a poll every ``interval``, as Celery's loop), and Celery's own
``s3://`` backend (boto3), which reads the same keys (``s3_base_path="r/"`` is s3result's
``prefix=r``). Each client reaches moto through its own ``CountingProxy``, so the requests of
each wait are counted at the wire. Measured: wall time from ``delay()`` to ``get()``
returning, and GETs (and HEADs) per wait, for sleeping tasks of 0.05, 0.1, 1 and 5 s, and for
``GroupResult.get()`` of 100 of them. ``interval`` is Celery's default, 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery, group
from celery.result import GroupResult

from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer

ROOT = Path(__file__).resolve().parents[1]
RIVALS = {"redis": "celery redis:// backend", "rabbitmq": "celery rpc:// backend"}
DURATIONS = (0.05, 0.1, 1.0, 5.0)
CLIENTS = ("s3result (adaptive, default)", "s3result (fixed, poll_initial_delay=off)", "celery s3 (boto3)")


def _reps(duration: float, scale: float, grouped: bool) -> int:
    base = {0.05: 20, 0.1: 20, 1.0: 6, 5.0: 3}[duration]
    if grouped:
        base = {0.05: 4, 0.1: 4, 1.0: 3, 5.0: 2}[duration]
    return max(1, round(base * scale))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _clients(moto: MotoServer, proxies: dict[str, CountingProxy]) -> dict[str, Celery]:
    secret = moto.secret_key.replace("/", "%2F").replace("+", "%2B")
    apps: dict[str, Celery] = {}
    for name, proxy in proxies.items():
        app = Celery(f"bench-waits-{len(apps)}", set_as_current=False)
        if name.startswith("celery s3"):
            app.conf.update(
                result_backend="s3://",
                s3_bucket=moto.bucket,
                s3_base_path="r/",
                s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
                s3_region="us-east-1",
                s3_access_key_id=moto.access_key,
                s3_secret_access_key=moto.secret_key,
            )
        else:
            query = "?poll_initial_delay=off" if "fixed" in name else ""
            app.conf.result_backend = (
                f"s3result+http://{moto.access_key}:{secret}@127.0.0.1:{proxy.port}/{moto.bucket}/r{query}"
            )
        apps[name] = app
    return apps


def _one(module: Any, client: Celery, proxy: CountingProxy, duration: float, size: int) -> tuple[float, Any]:
    before = proxy.snapshot()
    start = time.perf_counter()
    if size == 1:
        sent = module.sleepy.delay(duration)
        value = client.AsyncResult(sent.id).get(timeout=120)
        assert value == duration, value
    else:
        sent = group(module.sleepy.s(duration) for _ in range(size)).apply_async()
        joined = GroupResult(sent.id, [client.AsyncResult(r.id) for r in sent.results], app=client)
        values = joined.get(timeout=300)
        assert values == [duration] * size, values[:3]
    wall = time.perf_counter() - start
    return wall, proxy.snapshot() - before


def measure(scale: float = 1.0, durations: tuple[float, ...] = DURATIONS, group_size: int = 100) -> dict[str, Any]:
    """Wall times (s) and requests per wait, by (kind, duration) and client."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.conftest import Worker, point_app_at

    out: dict[str, Any] = {}
    with MotoServer(bucket="bench-waits") as moto, tempfile.TemporaryDirectory(prefix="s3result-waits-") as tmp:
        worker = Worker(moto.url("r"), Path(tmp), pool="threads", concurrency=group_size, name="waits")
        proxies = {name: CountingProxy("127.0.0.1", moto.port) for name in CLIENTS}
        worker.start()
        try:
            module = point_app_at(worker.url, worker.broker_dir)
            clients = _clients(moto, proxies)
            for name, client in clients.items():  # connect, probe, warm the worker up
                _one(module, client, proxies[name], 0.0, 1)
            for size in (1, group_size):
                for duration in durations:
                    kind = "single" if size == 1 else f"group of {size}"
                    row: dict[str, dict[str, list[float]]] = {
                        name: {"wall": [], "GET": [], "HEAD": []} for name in clients
                    }
                    for _ in range(_reps(duration, scale, size > 1)):
                        for name, client in clients.items():  # taking turns: noise hits all
                            wall, counts = _one(module, client, proxies[name], duration, size)
                            row[name]["wall"].append(wall)
                            row[name]["GET"].append(counts["GET"])
                            row[name]["HEAD"].append(counts["HEAD"])
                    out[f"{kind} {duration:g}"] = row
                    print(f"waits: {kind} {duration:g}s done", file=sys.stderr, flush=True)
        finally:
            worker.stop()
            for proxy in proxies.values():
                proxy.close()
    return out


def bars(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The issue's bars for the default settings on moto: (bar, measured, met)."""
    out = []
    adaptive = CLIENTS[0]
    short = results.get("single 0.1", {}).get(adaptive)
    if short:
        p50, gets = statistics.median(short["wall"]), max(short["GET"])
        out.append(("0.1 s task: p50 <= 0.25 s", f"{p50:.3f} s", p50 <= 0.25))
        out.append(("0.1 s task: <= 6 GETs per wait", f"{gets:.0f} (max)", gets <= 6))
    long = results.get("single 5", {}).get(adaptive)
    if long:
        gets = max(long["GET"])
        out.append(("5 s task: <= 5/0.5 + 6 = 16 GETs per wait", f"{gets:.0f} (max)", gets <= 16))
    return out


def report(results: dict[str, Any], command: str) -> str:
    """The RESULTS.md section."""
    lines = [
        "",
        "## Waiting for results: adaptive polling (`benchmarks/waits.py`)",
        "",
        f"`{command}`. One moto server, one worker (threads pool, 100 threads, e2e filesystem",
        "broker, which itself takes up to 50 ms to hand a task over), results stored by s3result;",
        "the three clients take turns on the same tasks' kind. Wall: from `delay()` to `get()`",
        "returning, seconds, p50 / p95 (p95 of few runs is their maximum). Requests per wait are",
        "counted at the wire (GET, and HEAD for Celery's backend), median (max). `interval=0.5`.",
        "",
        "| wait | client | runs | wall p50 | wall p95 | GETs per wait | HEADs per wait |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in results.items():
        for name, data in row.items():
            lines.append(
                f"| {key} s | {name} | {len(data['wall'])} | {statistics.median(data['wall']):.3f} | "
                f"{_pct(data['wall'], 0.95):.3f} | {statistics.median(data['GET']):.0f} ({max(data['GET']):.0f}) | "
                f"{statistics.median(data['HEAD']):.0f} ({max(data['HEAD']):.0f}) |"
            )
    lines += ["", "| bar (default settings, moto) | measured | |", "|---|---|---|"]
    for bar, measured, met in bars(results):
        lines.append(f"| {bar} | {measured} | {'met' if met else 'NOT met'} |")
    lines += [
        "",
        "GETs per wait of a task that takes D seconds, first delay d (0.025 s), cap I (`interval`):",
        "polls at 0, d, 3d, 7d, ... d(2^k - 1) while the wait is under I, then every I; with",
        "K = ceil(log2(I/d)) ramp waits (5 for the defaults, ending at d(2^K - 1) = 0.775 s): ",
        "1 + ceil(log2(D/d + 1)) GETs while D <= 0.775 s, else 1 + K + ceil((D - 0.775) / I).",
        "",
    ]
    return "\n".join(lines)


def _broker_client(name: str, url: str, broker: Any, namespace: int) -> Celery:
    from tests.e2e.conftest import queue_for

    app = Celery(f"bench-wake-{name}", set_as_current=False)
    app.conf.update(
        broker_url=broker.url(namespace),
        broker_transport_options=broker.transport_options(namespace),
        task_default_queue=queue_for(namespace),
        result_backend=url,
    )
    return app


def measure_brokers(reps: int = 40, duration: float = 0.1) -> dict[str, Any]:
    """Per broker: ``get()`` of a ``duration`` task, s3result (default settings) against Celery's backend
    for that broker (``redis://`` on Redis, ``rpc://`` on RabbitMQ), each with its own worker (threads
    pool, 8) on the same broker, taking turns. s3result's GETs are counted at the wire."""
    sys.path.insert(0, str(ROOT))
    from tests.brokers import RabbitMQServer, RedisServer
    from tests.e2e.conftest import Worker

    out: dict[str, Any] = {}
    with MotoServer(bucket="bench-wake") as moto, tempfile.TemporaryDirectory(prefix="s3result-wake-") as tmp:
        for name, broker_cls in (("redis", RedisServer), ("rabbitmq", RabbitMQServer)):
            with broker_cls() as broker:
                rival_url = f"redis://127.0.0.1:{broker.port}/9" if name == "redis" else "rpc://"
                proxy = CountingProxy("127.0.0.1", moto.port)
                urls = {"s3result (default)": (moto.url("wake"), 1), RIVALS[name]: (rival_url, 2)}
                workers = []
                for i, (url, ns) in enumerate(urls.values()):
                    folder = Path(tmp) / f"{name}-{i}"
                    folder.mkdir()
                    workers.append(
                        Worker(
                            url,
                            folder,
                            pool="threads",
                            concurrency=8,
                            name=f"wake-{name}-{i}",
                            broker=broker,
                            namespace=ns,
                        )
                    )
                for w in workers:
                    w.start()
                try:
                    clients = {}
                    for client, (url, ns) in urls.items():
                        if url.startswith("s3result"):
                            url = url.replace(f":{moto.port}/", f":{proxy.port}/", 1)
                        clients[client] = _broker_client(client, url, broker, ns)
                    row: dict[str, dict[str, list[float]]] = {c: {"wall": [], "GET": []} for c in clients}
                    for turn in range(reps + 3):
                        for client, app in clients.items():  # taking turns: noise hits all
                            before = proxy.snapshot()
                            start = time.perf_counter()
                            got = app.send_task("tests.e2e.app.sleepy", (duration,)).get(timeout=60)
                            wall = time.perf_counter() - start
                            assert got == duration, got
                            if turn >= 3:  # the first waits connect, subscribe and learn to trust
                                row[client]["wall"].append(wall)
                                row[client]["GET"].append((proxy.snapshot() - before)["GET"])
                    out[name] = row
                    print(f"waits: broker {name} done", file=sys.stderr, flush=True)
                finally:
                    for w in workers:
                        w.stop()
                    proxy.close()
    return out


def broker_bars(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Woken get() within 1.2x of Celery's backend for the broker, at most 2 GETs per get()."""
    out = []
    for name, row in results.items():
        ours = row["s3result (default)"]
        theirs = row[RIVALS[name]]
        p50, rival = statistics.median(ours["wall"]), statistics.median(theirs["wall"])
        out.append(
            (
                f"{name}: 0.1 s task p50 <= 1.2 x {RIVALS[name]}",
                f"{p50:.3f} s vs {rival:.3f} s ({p50 / rival:.2f}x)",
                p50 <= 1.2 * rival,
            )
        )
        gets = max(ours["GET"])
        out.append((f"{name}: <= 2 GETs per get()", f"{gets:.0f} (max)", gets <= 2))
    return out


def broker_report(results: dict[str, Any], command: str) -> str:
    """The RESULTS.md section for waking over the broker."""
    lines = [
        "",
        "## Waking the caller over the broker (`benchmarks/waits.py --brokers`)",
        "",
        f"`{command}`. One moto server; per broker (Redis, then RabbitMQ, started by the run on",
        "loopback), two workers (threads pool, 8 threads): one storing with s3result (default settings:",
        "notifications on), one with Celery's own backend for that broker (`redis://` on the same Redis,",
        "`rpc://` on RabbitMQ). The callers take turns; a 0.1 s task; wall from `send_task` to `get()`",
        "returning, seconds; s3result's GETs counted at the wire, median (max). The first 3 waits of each",
        "caller are left out (they connect, subscribe, and learn that notifications arrive).",
        "",
        "| broker | client | runs | wall p50 | wall p95 | GETs per get() |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        for client, data in row.items():
            gets = (
                f"{statistics.median(data['GET']):.0f} ({max(data['GET']):.0f})"
                if client.startswith("s3result")
                else "-"
            )
            lines.append(
                f"| {name} | {client} | {len(data['wall'])} | {statistics.median(data['wall']):.3f} | "
                f"{_pct(data['wall'], 0.95):.3f} | {gets} |"
            )
    lines += ["", "| bar | measured | |", "|---|---|---|"]
    for bar, measured, met in broker_bars(results):
        lines.append(f"| {bar} | {measured} | {'met' if met else 'NOT met'} |")
    lines.append("")
    return "\n".join(lines)


_CALLER = """
import json, sys, time
from celery import Celery
url, broker, options, queue, waits, duration = sys.argv[1:7]
app = Celery("bench-caller", set_as_current=False)
app.conf.update(broker_url=broker, broker_transport_options=json.loads(options), task_default_queue=queue,
                result_backend=url)
for _ in range(2):  # connect, subscribe, learn that notifications arrive
    app.send_task("tests.e2e.app.sleepy", (0.01,)).get(timeout=120)
print("ready", flush=True)
sys.stdin.readline()
ready = time.process_time()
sent = []
for _ in range(int(waits)):
    sent.append((time.monotonic(), app.send_task("tests.e2e.app.sleepy", (float(duration),))))
walls = []
for start, res in sent:
    assert res.get(timeout=600) == float(duration)
    walls.append(time.monotonic() - start)
from s3result.waits import notify
listener = notify.current_listener(app)
lost = listener.distrusted if listener is not None else 0
print(json.dumps({"walls": walls, "cpu": time.process_time() - ready, "lost": lost}), flush=True)
"""


def _callers_round(
    url: str, broker: Any, namespace: int, processes: int, waits: int, duration: float
) -> tuple[list[float], float, int]:
    """One round: ``processes`` callers, each sends ``waits`` tasks at once and waits for each in
    turn; every wait's wall (send to ``get()`` returning) and the callers' CPU seconds in all, from
    the start signal on (imports, connecting and the first waits left out), and how many times
    s3result's callers stopped trusting notifications (a result found by a poll whose
    notification did not follow)."""
    import json
    import subprocess

    from tests.e2e.conftest import queue_for

    args = [url, broker.url(namespace), json.dumps(broker.transport_options(namespace)), queue_for(namespace)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CALLER, *args, str(waits), str(duration)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        walls: list[float] = []
        cpu, lost = 0.0, 0
        for proc in procs:
            assert proc.stdout is not None
            said = json.loads(proc.stdout.readline())
            walls += said["walls"]
            cpu += said["cpu"]
            lost += said["lost"]
            proc.wait(timeout=60)
        return walls, cpu, lost
    finally:
        for proc in procs:
            proc.kill()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and the children it waited for, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measure_callers(processes: int, waits: int, rounds: int = 2, duration: float = 0.0) -> dict[str, Any]:
    """Many callers at once on a Redis broker: s3result (on an in-memory keep-alive S3 fake, its
    callers' GETs counted at the fake) against Celery's ``redis://`` backend, one worker each
    (threads pool, 8), taking turns round by round."""
    sys.path.insert(0, str(ROOT))
    from tests.brokers import RedisServer
    from tests.e2e.conftest import Worker

    from .memstore import MemStore

    store = MemStore(ports=2)
    out: dict[str, Any] = {"rounds": [], "store": {}}
    try:
        with RedisServer() as broker, tempfile.TemporaryDirectory(prefix="s3result-callers-") as tmp:
            worker_port, caller_port = store.ports
            urls = {
                "s3result (default)": (f"s3result+http://bench:benchsecret@127.0.0.1:{worker_port}/bench/r", 1),
                RIVALS["redis"]: (f"redis://127.0.0.1:{broker.port}/9", 2),
            }
            workers = []
            for i, (url, ns) in enumerate(urls.values()):
                folder = Path(tmp) / f"w{i}"
                folder.mkdir()
                workers.append(
                    Worker(url, folder, pool="threads", concurrency=8, name=f"callers-{i}", broker=broker, namespace=ns)
                )
                workers[-1].start()
            try:
                for _ in range(rounds):
                    for worker, (client, (url, ns)) in zip(workers, urls.items(), strict=True):
                        assert worker.proc is not None
                        worker_cpu = _cpu(worker.proc.pid)
                        if url.startswith("s3result"):
                            url = url.replace(f":{worker_port}/", f":{caller_port}/", 1)
                        before = store.stats()
                        start = time.perf_counter()
                        walls, cpu, lost = _callers_round(url, broker, ns, processes, waits, duration)
                        after = store.stats()
                        gets = after["counts"][str(caller_port)].get("GET", 0)
                        gets -= before["counts"][str(caller_port)].get("GET", 0)
                        out["rounds"].append(
                            {
                                "client": client,
                                "walls": walls,
                                "total": time.perf_counter() - start,
                                "callers_cpu": cpu,
                                "worker_cpu": _cpu(worker.proc.pid) - worker_cpu,
                                "GET": gets if client.startswith("s3result") else None,
                                "lost": lost,
                                "store_cpu": after["cpu"] - before["cpu"],
                                "store_requests": sum(sum(c.values()) for c in after["counts"].values())
                                - sum(sum(c.values()) for c in before["counts"].values()),
                            }
                        )
                        print(f"waits: callers {client} round done", file=sys.stderr, flush=True)
            finally:
                for w in workers:
                    w.stop()
    finally:
        store.close()
    return out


def callers_report(results: dict[str, Any], processes: int, waits: int, command: str) -> str:
    """The RESULTS.md section for many callers at once."""
    lines = [
        "",
        "## Many callers at once (`benchmarks/waits.py --callers`)",
        "",
        f"`{command}`. {processes} caller processes, each sending {waits} tasks at once (a 0 s sleep) and",
        "then waiting for each in turn (`get()`), all callers started together; a Redis broker; one",
        "worker (threads pool, 8 threads) per backend: s3result (default settings, notifications on)",
        "on an in-memory keep-alive S3 fake (`benchmarks/memstore.py`, its own process), and Celery's",
        "`redis://` backend on the same Redis. Rounds alternate. Wall: from `send_task` to `get()`",
        "returning, seconds. GETs: the callers' GETs at the fake, per wait. Trust lost: times a caller",
        "went back to fast polling (a poll found a result and its notification did not follow within",
        "a second). CPU seconds during the",
        "round: the callers' (from the start signal on), the worker's, and the fake store's (it keeps",
        "up when that is a small part of the round). The machine is shared: compare within a round.",
        "",
        "| round | client | waits | p50 | p90 | GETs per wait | trust lost | callers' CPU s | worker CPU s "
        "| store CPU s (requests) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results["rounds"]):
        gets = "-" if r["GET"] is None else f"{r['GET'] / len(r['walls']):.2f}"
        lines.append(
            f"| {i // 2 + 1} | {r['client']} | {len(r['walls'])} | {statistics.median(r['walls']):.2f} | "
            f"{_pct(r['walls'], 0.9):.2f} | {gets} | {r['lost'] if r['GET'] is not None else '-'} | {r['callers_cpu']:.1f} | {r['worker_cpu']:.1f} | "
            f"{r['store_cpu']:.2f} ({r['store_requests']}) |"
        )
    lines += ["", "| bar | measured | |", "|---|---|---|"]
    for bar, measured, met in callers_bars(results):
        lines.append(f"| {bar} | {measured} | {'met' if met else 'NOT met'} |")
    lines.append("")
    return "\n".join(lines)


def callers_bars(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """p50 within 1.5x of redis:// (all rounds pooled), at most 3 GETs per wait."""
    ours = [r for r in results["rounds"] if r["GET"] is not None]
    theirs = [r for r in results["rounds"] if r["GET"] is None]
    p50 = statistics.median([w for r in ours for w in r["walls"]])
    rival = statistics.median([w for r in theirs for w in r["walls"]])
    gets = sum(r["GET"] for r in ours) / sum(len(r["walls"]) for r in ours)
    return [
        ("p50 <= 1.5 x redis://", f"{p50:.2f} s vs {rival:.2f} s ({p50 / rival:.2f}x)", p50 <= 1.5 * rival),
        ("<= 3 GETs per wait", f"{gets:.2f}", gets <= 3),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the repetitions (0.2 for a smoke run)")
    parser.add_argument("--durations", default=",".join(f"{d:g}" for d in DURATIONS))
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--brokers", action="store_true", help="waking over Redis and RabbitMQ instead")
    parser.add_argument("--reps", type=int, default=40, help="waits per client and broker (--brokers)")
    parser.add_argument("--callers", default="", help="PROCESSESxWAITS: many callers at once (e.g. 20x50)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per backend (--callers)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.waits " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.callers:
        processes, waits = (int(n) for n in args.callers.lower().split("x"))
        results = measure_callers(processes, waits, args.rounds)
        print(callers_report(results, processes, waits, command.strip()))
        return 0
    if args.brokers:
        print(broker_report(measure_brokers(args.reps), command.strip()))
        return 0
    durations = tuple(float(d) for d in args.durations.split(","))
    print(report(measure(args.scale, durations, args.group_size), command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
