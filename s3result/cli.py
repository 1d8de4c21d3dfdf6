"""The ``s3result`` command: ``demo`` for now (see ``s3result --help``).

It sits on top of the layers: it may use the backend, the client and the embedded store,
and nothing below imports it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["main"]

# AWS S3 Standard list prices (us-east-1), USD: PUT/COPY/POST/LIST and GET/SELECT per 1,000.
PRICE_PUT_PER_1000 = 0.005
PRICE_GET_PER_1000 = 0.0004


class _Progress:
    """A progress bar on a terminal; silent otherwise (logs and CI stay clean)."""

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream, self.label, self.total = stream, label, total
        self.tty = stream.isatty()

    def update(self, done: int) -> None:
        if self.tty:
            width = 30
            filled = int(width * done / max(self.total, 1))
            self.stream.write(f"\r  {self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (len(self.label) + 50) + "\r")
            self.stream.flush()


def _wait_all(results: Sequence[Any], label: str, timeout: float = 120.0) -> None:
    bar = _Progress(sys.stderr, label, len(results))
    deadline = time.monotonic() + timeout
    while True:
        done = sum(1 for r in results if r.ready())
        bar.update(done)
        if done == len(results) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    bar.finish()


def _demo(args: argparse.Namespace) -> int:
    from ._proxy import CountingProxy
    from .embedded import MotoServer

    out = sys.stdout
    with MotoServer(bucket="s3result-demo") as store, tempfile.TemporaryDirectory() as broker:
        proxy = CountingProxy(store.host, store.port)
        url = f"s3result+http://{store.access_key}:{store.secret_key}@127.0.0.1:{proxy.port}/{store.bucket}/demo"
        out.write(f"embedded S3 store: moto server with SigV4 auth on, {store.endpoint}, bucket {store.bucket!r}\n")
        env = dict(os.environ, S3RESULT_DEMO_BACKEND=url, S3RESULT_DEMO_BROKER=broker)
        os.environ.update(S3RESULT_DEMO_BACKEND=url, S3RESULT_DEMO_BROKER=broker)
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "s3result._demo_app",
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
            return _run_demo(out, proxy, worker, log)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            proxy.close()
            log.close()


def _run_demo(out: TextIO, proxy: Any, worker: subprocess.Popen[bytes], log: Any) -> int:
    from celery import chord, group

    from . import _demo_app as demo

    out.write(f"celery worker: prefork, concurrency 2, pid {worker.pid}\n\n")
    backend = demo.app.backend
    first = demo.add.delay(2, 3)
    _wait_all([first], "waiting for the worker")
    if not first.ready():
        log.seek(0)
        out.write(
            f"the worker did not run the first task within 120 s; its log ends with:\n{log.read()[-2000:].decode(errors='replace')}\n"
        )
        return 1
    out.write(f"add(2, 3)                 = {first.get(timeout=10)}\n")
    failing = demo.fail.delay("this task fails on purpose")
    _wait_all([failing], "fail")
    try:
        failing.get(timeout=60)
    except demo.DemoError as exc:
        out.write(f"fail(...)                 raised {type(exc).__name__}({str(exc)!r}), state {failing.state}\n")
    g = group(demo.add.s(i, i) for i in range(20)).apply_async()
    _wait_all(g.results, "group of 20")
    out.write(f"group of 20 x add(i, i)   = {g.get(timeout=60)}\n")
    c = chord(demo.add.s(i, 1) for i in range(10))(demo.tsum.s())
    _wait_all([c], "chord of 10")
    out.write(f"chord of 10, tsum body    = {c.get(timeout=120)}\n\n")

    # Requests per operation, counted at the wire.
    before = proxy.total
    demo.app.AsyncResult(first.id).get(timeout=10)
    reads = proxy.total - before
    before = proxy.total
    demo.app.AsyncResult("no-such-task-yet").state  # noqa: B018 - a pending poll
    polls = proxy.total - before
    before = proxy.total
    backend.store_result("demo-write-probe", 42, "SUCCESS")
    writes = proxy.total - before
    backend.forget("demo-write-probe")

    counts = proxy.snapshot()
    total = sum(counts.values())
    per_method = ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))
    gets = counts.get("GET", 0) + counts.get("HEAD", 0)
    puts = counts.get("PUT", 0)
    cost = puts / 1000 * PRICE_PUT_PER_1000 + gets / 1000 * PRICE_GET_PER_1000
    tasks = 1 + 1 + 20 + 10 + 1
    out.write(f"S3 requests, counted at the wire: {total} ({per_method}) for {tasks} tasks\n")
    out.write(f"requests per result read: {reads}; per pending poll: {polls}; per stored result: {writes}\n")
    out.write(
        f"cost at AWS S3 Standard list prices (PUT ${PRICE_PUT_PER_1000}/1000, GET ${PRICE_GET_PER_1000}/1000): "
        f"${cost:.6f} for this demo, about ${cost / tasks * 1_000_000:.2f} per million tasks\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3result`` console script."""
    parser = argparse.ArgumentParser(prog="s3result", description="Celery results on S3, without boto.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run tasks, a group and a chord on an embedded S3 store (moto server)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("moto"):
            print("s3result demo needs the embedded store: pip install 's3result[demo]'", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
