"""Chords at fleet scale: native (tree of compare-and-swap counters) against chord_unlock.

    python -m benchmarks.chords                                   # 10, 100, 1,000 parts, 2 x prefork 8
    python -m benchmarks.chords --sizes 10,100,1000,10000 --workers 2 --concurrency 12 --latency 0.02
    python -m benchmarks.chords --counting 2000 --procs 16        # counting only, forked processes
    python -m benchmarks.chords --failing 500 --concurrency 12    # a failed part at the caller, vs redis://
    python -m benchmarks.chords --failing 500 --store memstore    # the same on a store that keeps up
    python -m benchmarks.chords --sizes 12 --stream 20 --workers 1 --concurrency 4  # 20 chords at once

Real workers (``--workers`` x prefork ``--concurrency``, Redis broker) run chords of each size,
natively and with chord_unlock (``conditional_writes=disabled``) in the same run, against moto
(or ``--store memstore``, an in-memory fake that keeps up with a fleet, where moto is a busy
Python process and the store's pace, not the client's, sets the times) behind a relay that answers each request after ``--latency`` seconds (AWS S3 answers in ~20 ms)
and counts requests and bytes at the wire. Only the workers go through the relay: the producer
and the caller's polling go straight to moto, so what is counted is what the fleet does for
the chord (each part's result PUT included, the join's reads and the clean-up included).

Per chord: the whole time (apply to the body's result), the time from the last part's end (the
latest ``date_done`` of the header results) to the body's start (the ``received`` line in the
workers' logs), and requests and bytes per part.

``--counting N``: the counting alone, as the repro of the scaling issue did it: ``--procs``
forked processes store and count the parts of one native chord, all at once; the part that
completes the count joins, publishes (to an in-memory broker) and cleans up as a worker does.
tests/integration/test_chord_tree_counts.py holds these counts in CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing as mp
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/[^\]]+\] Task tests\.e2e\.app\.(\w+)\[([^\]]+)\] (received|succeeded)"
)


_REQUEST = re.compile(rb"(GET|PUT|DELETE|HEAD|POST) (\S+) HTTP/1\.1\r\n")


def _kind(target: bytes) -> str:
    if b"chord-unlock" in target:
        return "node" if re.search(rb"chord-unlock-[^/?]*\.\d+\.\d+", target) else "root"
    for name in (b"task-meta", b"taskset-meta"):
        if name in target:
            return name.decode()
    return "other"


class WireCounter:
    """A TCP relay to ``upstream`` that counts requests and bytes (both ways) and delays each request."""

    def __init__(self, upstream_port: int, latency: float = 0.0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.latency = latency
        self.requests = 0
        self.bytes = 0
        #: Requests by method and kind of key (``PUT task``, ``GET node``...).
        self.kinds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.bytes

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                n = data.count(b" HTTP/1.1\r\n") if requests else 0
                with self._lock:
                    self.bytes += len(data)
                    self.requests += n
                    for line in _REQUEST.findall(data) if n else ():
                        kind = f"{line[0].decode()} {_kind(line[1])}"
                        self.kinds[kind] = self.kinds.get(kind, 0) + 1
                if n and self.latency:
                    time.sleep(self.latency)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, conn: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            conn.close()
            return
        for s in (conn, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pipe, args=(up, conn, False), daemon=True).start()
        self._pipe(conn, up, True)


# -- counting only: forked processes -----------------------------------------------------------


def _app(url: str) -> Any:
    from celery import Celery

    app = Celery("chordbench", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    return app


def _counting_process(
    url: str, gid: str, body: dict[str, Any], ids: list[str], mine: list[int], go: Any, q: Any, value_bytes: int = 0
) -> None:
    backend = _app(url).backend
    _ = backend.conditional_support  # probed long before a chord, in a real worker: not counted
    q.put(0)
    fired: list[float] = []
    backend_fire = backend.chords.firing.fire
    backend_join = backend.chords.firing.join_header

    def fire(*args: Any, **kwargs: Any) -> Any:
        fired.append(time.time())
        return backend_fire(*args, **kwargs)

    def join(*args: Any, **kwargs: Any) -> Any:
        try:
            return backend_join(*args, **kwargs)
        finally:
            fired.append(time.time())

    backend.chords.firing.fire = fire  # type: ignore[method-assign]
    backend.chords.firing.join_header = join  # type: ignore[method-assign]
    go.wait()
    last = 0.0
    for i in mine:
        last = time.time()
        req = SimpleNamespace(
            id=ids[i], group=gid, group_index=i, chord=body, task="part", delivery_info={},
            ignore_result=False, hostname="w", correlation_id=ids[i], errbacks=None, chain=None, children=[],
        )  # fmt: skip
        backend.mark_as_done(ids[i], str(i).ljust(value_bytes - 2, "x") if value_bytes else i, request=req)
    q.put((last, fired))


def count_parts(
    parts: int,
    procs: int,
    latency: float = 0.0,
    tree_from: int | None = None,
    geometry: str = "",
    value_bytes: int = 0,
) -> dict[str, float]:
    """One native chord of ``parts`` counted by ``procs`` processes: requests and bytes per part.

    The store is a moto server behind a ``WireCounter``; what the producer does (save the group,
    create the counter, record the size) is not counted; what the processes do is (each part's
    result PUT and count, the firing part's join, publish and clean-up).
    """
    from celery import group

    from s3result.testing.store import MotoServer

    with MotoServer(bucket="chordcount") as moto:
        relay = WireCounter(moto.port, latency)
        try:
            prefix = uuid.uuid4().hex[:8]
            direct = f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{moto.port}/chordcount/{prefix}"
            url = direct.replace(f":{moto.port}/", f":{relay.port}/")
            producer = _app(direct)
            if tree_from is not None:
                producer.backend.chords.tree_from = tree_from
            if geometry:  # "S,F,K": a tree of this shape, to compare shapes (0 = count in the root)
                from s3result.chords.geometry import Geometry

                shape = [int(v) for v in geometry.split(",")]
                if shape[0] and not shape[1]:  # one leaf per column
                    shape[1] = shape[0] * -(-parts // shape[0])
                fixed = Geometry(parts, *shape) if shape[0] else None
                producer.backend.chords.tree_for = lambda _args: fixed

            @producer.task(name="part", shared=False)
            def part(i: int) -> int:  # pragma: no cover - never run, only signed
                return i

            @producer.task(name="collect", shared=False)
            def collect(values: list[int]) -> int:  # pragma: no cover - never run, only signed
                return sum(values)

            body = producer.tasks["collect"].s()
            body.freeze()
            gid = uuid.uuid4().hex
            header = group(producer.tasks["part"].s(i) for i in range(parts))
            header.options["task_id"] = gid
            args = header._freeze_group_tasks(group_id=gid, chord=body)
            producer.backend.apply_chord(args, body)
            producer.backend.set_chord_size(gid, parts)
            ids = [r.id for r in args[1]]
            ctx = mp.get_context("fork")
            queue: Any = ctx.Queue()
            go = ctx.Event()
            workers = [
                ctx.Process(
                    target=_counting_process,
                    args=(url, gid, dict(body), ids, list(range(p, parts, procs)), go, queue, value_bytes),
                )
                for p in range(procs)
            ]
            for w in workers:
                w.start()
            for _ in workers:
                queue.get(timeout=600)  # probed, ready
            before = relay.snapshot()
            start = time.time()
            go.set()
            ends = [queue.get(timeout=3600) for _ in workers]
            fired = sum(1 for _, times in ends if times)
            last_start = max(last for last, _ in ends)  # the last part's start (its result PUT next)
            times = [t for _, ts in ends for t in ts]
            for w in workers:
                w.join()
            wall = time.time() - start
            after = relay.snapshot()
            body_meta = producer.backend.get_task_meta(body.id, cache=False)
            left = producer.backend.client.get_or_none(
                producer.backend.store.key(producer.backend.get_key_for_chord(gid))
            )
            requests, moved = after[0] - before[0], after[1] - before[1]
            return {
                "parts": parts,
                "procs": procs,
                "fired": fired,
                "requests_per_part": requests / parts,
                "bytes_per_part": moved / parts,
                "wall_s": wall,
                "body_failed": float(body_meta["status"] == "FAILURE"),
                # From the last part's start to the firing part's start and to its join's end.
                "fire_s": (times[0] - last_start) if times else -1.0,
                "joined_s": (times[-1] - last_start) if times else -1.0,
                "counter_left": float(left is not None),
                "kinds": dict(sorted(relay.kinds.items())),  # type: ignore[dict-item]
            }
        finally:
            relay.close()


# -- real workers ------------------------------------------------------------------------------


def _stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _body_received(logs: list[Path], body_id: str) -> float:
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m and m.group(2) in ("collect", "echo") and m.group(3) == body_id and m.group(4) == "received":
                return _stamp(m.group(1))
    raise RuntimeError("the chord body never started")


def _done_at(backend: Any, task_id: str) -> float:
    done = backend.get_task_meta(task_id, cache=False)["date_done"]
    return float(done.timestamp() if hasattr(done, "timestamp") else dt.datetime.fromisoformat(done).timestamp())


def _last_part_done(backend: Any, part_ids: list[str]) -> float:
    keys = [backend.store.key(backend.get_key_for_task(pid)) for pid in part_ids]
    last = 0.0
    for found in backend.client.get_many(keys):
        done = backend.decode_result(found.body)["date_done"]
        stamp = done.timestamp() if hasattr(done, "timestamp") else dt.datetime.fromisoformat(done).timestamp()
        last = max(last, stamp)
    return last


MODES = {
    "native": ("native", ""),
    "unlock": ("chord_unlock", "?conditional_writes=disabled"),
    "plain": ("native, no turns", ""),
}
#: The workers' environment per mode (tests/e2e/app.py): "plain" sets ``S3Backend.chord_turns = False``.
MODE_ENV = {"plain": {"E2E_CHORD_TURNS": "0"}}


@contextmanager
def _store(kind: str, bucket: str) -> Iterator[Any]:
    """The store behind the relay: moto (auth on, one Python process: busy at a fleet's pace) or
    ``memstore``, the in-memory fake that keeps up (benchmarks/memstore.py: no signature checks)."""
    if kind == "memstore":
        from .memstore import MemStore

        fake = MemStore(1)
        try:
            yield SimpleNamespace(port=fake.ports[0], access_key="bench", secret_key="bench", bucket=bucket)
        finally:
            fake.close()
        return
    from s3result.testing.store import MotoServer

    with MotoServer(bucket=bucket) as moto:
        yield moto


def run(
    sizes: list[int],
    repeats: int = 1,
    modes: tuple[str, ...] = ("native", "unlock"),
    title: str = "",
    *,
    workers: int = 2,
    concurrency: int = 8,
    latency: float = 0.02,
    join_timeout: float = 120.0,
    tree_from: int | None = None,
    value_bytes: int = 0,
    store: str = "moto",
    stream: int = 0,
) -> str:
    """Chords of each size on a real fleet, native and chord_unlock; a RESULTS.md section.

    ``stream``: apply that many chords of each size at once, and time them all (a fleet's
    throughput on a burst of chords, where each part's wait for its turn is time taken from
    other chords' parts); the gap is then not measured.

    ``value_bytes``: each part returns a string whose encoded form is that long (48: the most
    that travels with a part's count), and the body returns them all; else small ints, summed.
    """
    from celery import chord, group

    from tests.brokers import RedisServer
    from tests.e2e.conftest import Worker, point_app_at

    rows = []
    with _store(store, "chords") as moto, RedisServer() as redis:
        relay = WireCounter(moto.port, latency)
        for mode in modes:
            name, query = MODES[mode]
            path = f"{moto.bucket}/{uuid.uuid4().hex[:6]}{query}"
            url = f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{relay.port}/{path}"
            client_url = url.replace(f":{relay.port}/", f":{moto.port}/")
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                fleet = [
                    Worker(
                        url,
                        tmp,
                        pool="prefork",
                        concurrency=concurrency,
                        name=f"w{i}",
                        broker=redis,
                        extra_env={"E2E_CHORD_JOIN_TIMEOUT": str(join_timeout), **MODE_ENV.get(mode, {})},
                    )
                    for i in range(workers)
                ]
                for w in fleet:
                    w.start()
                try:
                    module = point_app_at(client_url, tmp / "broker", broker=redis)
                    if tree_from is not None:
                        module.app.backend.chords.tree_from = tree_from
                    # Every pool process has stored a result (and probed the store) and counted
                    # parts of chords before the first chord, as in a fleet that has been up for a
                    # while running chords (a process takes turns once it has seen parts end with
                    # its own: s3result/chords/turns.py).
                    warm = group(module.add.si(i, i) for i in range(workers * concurrency * 4)).apply_async()
                    warm.get(timeout=600, interval=0.2)
                    for _ in range(4):
                        warm = chord(module.part.s(i) for i in range(workers * concurrency))(module.collect.s("warm"))
                        warm.get(timeout=600, interval=0.2)
                    time.sleep(2.0)  # the last warm chord's clean-up
                    for size in sizes:
                        for _ in range(repeats):
                            before = relay.snapshot()
                            kinds = dict(relay.kinds)
                            started = time.time()
                            if stream:
                                burst = [
                                    chord(module.part.s(i) for i in range(size))(module.collect.s("bench"))
                                    for _ in range(stream)
                                ]
                                assert [r.get(timeout=3600, interval=0.1) for r in burst] == [sum(range(size))] * stream
                                whole = time.time() - started
                                time.sleep(2.0)
                                after = relay.snapshot()
                                req, moved = after[0] - before[0], after[1] - before[1]
                                parts = size * stream
                                rows.append(
                                    (f"{name}, {stream} at once", size, whole, math.nan, req / parts, moved / parts)
                                )
                                print(rows[-1], flush=True)
                                continue
                            if value_bytes:  # results of that encoded size: "<i>xxx...", JSON-quoted
                                values = [str(i).ljust(value_bytes - 2, "x") for i in range(size)]
                                res = chord(module.echo.si(v) for v in values)(module.echo.s())
                                assert res.get(timeout=3600, interval=0.2) == values
                            else:
                                res = chord(module.part.s(i) for i in range(size))(module.collect.s("bench"))
                                assert res.get(timeout=3600, interval=0.2) == sum(range(size))
                            whole = time.time() - started
                            time.sleep(2.0)  # the clean-up after publishing, and the last log lines
                            after = relay.snapshot()
                            part_ids = [r.id for r in res.parent.results]
                            body = _body_received([w.log for w in fleet], res.id)
                            gap = body - _last_part_done(module.app.backend, part_ids)
                            req, moved = after[0] - before[0], after[1] - before[1]
                            rows.append((name, size, whole, gap, req / size, moved / size))
                            spent = {k: v - kinds.get(k, 0) for k, v in relay.kinds.items() if v != kinds.get(k, 0)}
                            print(rows[-1], dict(sorted(spent.items())), flush=True)
                finally:
                    for w in fleet:
                        w.stop()
        relay.close()
    lines = [
        "",
        f"## Chords at fleet scale, {workers} worker{'s' if workers != 1 else ''} x prefork {concurrency}, Redis broker, {store} behind a "
        f"{latency * 1000:.0f} ms relay (python -m benchmarks.chords){', ' + title if title else ''}",
        "",
        "Whole time: apply to the body's result. Gap: the last part's end (latest `date_done`) to the",
        "body's start (`received` in the workers' logs). Requests and bytes: the workers' only, at the",
        "wire (each part's result PUT, the counting, the join's reads, the clean-up).",
        "",
        "| mode | parts | whole time, s | last part -> body start, s | requests per part | bytes per part |",
        "|---|---|---|---|---|---|",
    ]
    for name, size, whole, gap, req, moved in rows:
        shown = "" if math.isnan(gap) else f"{gap:.2f}"
        lines.append(f"| {name} | {size} | {whole:.1f} | {shown} | {req:.2f} | {moved:.0f} |")
    return "\n".join(lines) + "\n"


def _serve_relay(upstream_port: int, latency: float, ports: Any) -> None:
    relay = WireCounter(upstream_port, latency)
    ports.put(relay.port)
    threading.Event().wait()


@contextmanager
def _relay_apart(upstream_port: int, latency: float) -> Iterator[int]:
    """A ``WireCounter`` in a process of its own (its port): its threads, busy with the fleet's
    requests, then take no turn of the caller's GIL, as a store 20 ms away costs the caller
    nothing (the Redis backend's caller has no relay in its process either)."""
    ctx = mp.get_context("fork")
    ports: Any = ctx.Queue()
    proc = ctx.Process(target=_serve_relay, args=(upstream_port, latency, ports), daemon=True)
    proc.start()
    try:
        yield int(ports.get(timeout=60))
    finally:
        proc.terminate()
        proc.join(10)


def run_failing(
    size: int, *, workers: int = 2, concurrency: int = 12, latency: float = 0.02, store: str = "moto"
) -> str:
    """A chord of ``size`` parts whose middle part raises: the time from ``apply_async`` to the
    caller's exception, s3result (native, behind the relay) against Celery's Redis backend, one run.

    Same broker, workers, prefork and prefetch for both; both timed from just before ``apply_async``.
    The relay runs in a process of its own (``_relay_apart``)."""
    from celery import chord

    from tests.brokers import RedisServer
    from tests.e2e.conftest import Worker, point_app_at

    rows = []
    with _store(store, "chordfail") as moto, RedisServer() as redis, _relay_apart(moto.port, latency) as relay_port:
        s3 = f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{relay_port}/chordfail/{uuid.uuid4().hex[:6]}"
        backends = [
            ("s3result native", s3, s3.replace(f":{relay_port}/", f":{moto.port}/")),
            ("redis://", *[redis.url(3)] * 2),
        ]
        for name, url, client_url in backends:
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                fleet = [
                    Worker(url, tmp, pool="prefork", concurrency=concurrency, name=f"w{i}", broker=redis)
                    for i in range(workers)
                ]
                for w in fleet:
                    w.start()
                try:
                    module = point_app_at(client_url, tmp / "broker", broker=redis)
                    warm = chord(module.part.s(i) for i in range(workers * concurrency))(module.collect.s("warm"))
                    warm.get(timeout=600, interval=0.2)
                    bad = size // 2
                    header = [module.fail.s(f"part {bad} broke") if i == bad else module.part.s(i) for i in range(size)]
                    started = time.time()
                    res = chord(header)(module.collect.s("failing"))
                    applied = time.time() - started
                    try:
                        res.get(timeout=600, interval=0.2)
                        raised = "nothing"
                    except Exception as exc:  # noqa: BLE001 - what the caller gets is the measure
                        raised = f"{type(exc).__name__}: {exc}"
                    took = time.time() - started
                    stored = _done_at(module.app.backend, res.parent.results[bad].id) - started
                    rows.append((name, size, took, applied, stored, raised[:60]))
                    print(rows[-1], flush=True)
                finally:
                    for w in fleet:
                        w.stop()
    lines = [
        "",
        f"## A failed part at the caller: {size} parts, part {size // 2} raises; {workers} workers x prefork "
        f"{concurrency}, Redis broker, s3result on {store} through a {latency * 1000:.0f} ms relay "
        f"(python -m benchmarks.chords --failing {size})",
        "",
        "From the instant before `apply_async`: when it returned (the producer published the header while",
        "the fleet ran it), when the failed part was stored (its `date_done`), and the exception in the caller;",
        "the caller's lag: from the part stored to the exception.",
        "",
        "| backend | parts | apply to the caller's exception, s | `apply_async` returned, s | part stored, s "
        "| the caller's lag, s | the caller's exception |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, took, applied, stored, raised in rows:
        lines.append(f"| {name} | {n} | {took:.2f} | {applied:.2f} | {stored:.2f} | {took - stored:.2f} | `{raised}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--modes", default="native,unlock", help="native, unlock, plain (native without turns)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="prefork processes per worker")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the relay adds to each request")
    parser.add_argument("--store", default="moto", choices=("moto", "memstore"), help="the store behind the relay")
    parser.add_argument("--counting", type=int, default=0, help="count a chord of N parts in forked processes")
    parser.add_argument("--failing", type=int, default=0, help="N parts, one raising: the caller's error, vs redis://")
    parser.add_argument("--value-bytes", type=int, default=0, help="each part's encoded result size (48: the limit)")
    parser.add_argument("--procs", type=int, default=16, help="processes for --counting")
    parser.add_argument("--tree-from", type=int, default=None, help="the producer's chord_tree_from")
    parser.add_argument(
        "--geometry", default="", help="S,F,K: the tree's stripes, fill, fan-in for --counting (0: root)"
    )
    parser.add_argument("--stream", type=int, default=0, help="apply that many chords of each size at once")
    parser.add_argument("--title", default="", help="appended to the section's heading (e.g. the commit)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "RESULTS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.failing:
        section = run_failing(
            args.failing, workers=args.workers, concurrency=args.concurrency, latency=args.latency, store=args.store
        )
        if not args.no_write:
            with open(args.output, "a") as f:
                f.write(section)
        print(section)
        return 0
    if args.counting:
        print(count_parts(args.counting, args.procs, args.latency, args.tree_from, args.geometry, args.value_bytes))
        return 0
    modes = tuple(m for m in args.modes.split(",") if m)
    section = run(
        [int(s) for s in args.sizes.split(",")],
        args.repeats,
        modes,
        args.title,
        workers=args.workers,
        concurrency=args.concurrency,
        latency=args.latency,
        tree_from=args.tree_from,
        value_bytes=args.value_bytes,
        store=args.store,
        stream=args.stream,
    )
    if not args.no_write:
        with open(args.output, "a") as f:
            f.write(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
