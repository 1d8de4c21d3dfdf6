"""The ``s3result`` command: check, demo, get, forget, lifecycle, cost (see ``s3result --help``).

It sits on top of the layers: it may use the backend, the client and the embedded store,
and nothing below imports it.
"""

from __future__ import annotations

import argparse
import json
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
# S3 Standard storage, first 50 TB, per GB-month.
PRICE_STORAGE_GB_MONTH = 0.023


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
    from ..testing.proxy import CountingProxy
    from ..testing.store import MotoServer

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

    from . import demo_app as demo

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


def _settings_and_app(args: argparse.Namespace) -> tuple[Any, Any]:
    """The same configuration a worker would read: from ``--app`` or ``--url``."""
    from ..config import from_celery_conf

    if getattr(args, "app", None):
        from celery.utils.imports import symbol_by_name

        sys.path.insert(0, os.getcwd())
        app = symbol_by_name(args.app if ":" in args.app else f"{args.app}:app")
        return from_celery_conf(app.conf, app.conf.result_backend), app
    url = getattr(args, "url", None) or os.environ.get("S3RESULT_URL")
    if not url:
        raise SystemExit("s3result: give --app proj.celery or --url s3result://BUCKET/PREFIX (or set S3RESULT_URL)")
    from celery import Celery

    app = Celery("s3result-cli", set_as_current=False)
    app.conf.result_backend = url
    return from_celery_conf(app.conf, url), app


def _check(args: argparse.Namespace) -> int:
    from .check import run_check

    settings, app = _settings_and_app(args)
    return run_check(settings, app, as_json=args.json, out=sys.stdout)


def _backend(args: argparse.Namespace) -> Any:
    _, app = _settings_and_app(args)
    return app.backend


def _get(args: argparse.Namespace) -> int:
    backend = _backend(args)
    meta = backend.get_task_meta(args.task_id, cache=False)
    result = meta.get("result")
    if isinstance(result, BaseException):
        result = f"{type(result).__name__}: {result}"
    shown = {
        k: (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v)) for k, v in meta.items()
    }
    shown["result"] = result if isinstance(result, (str, int, float, bool, type(None), list, dict)) else repr(result)
    if args.json:
        sys.stdout.write(json.dumps(shown, default=repr, indent=2) + "\n")
    else:
        sys.stdout.write(f"task {args.task_id}: {meta['status']}\n")
        for key, value in shown.items():
            if key not in ("status", "task_id") and value not in (None, [], {}):
                sys.stdout.write(f"  {key}: {value}\n")
    return 0 if meta["status"] != "PENDING" else 1


def _forget(args: argparse.Namespace) -> int:
    backend = _backend(args)
    key = backend.settings.object_key(backend.get_key_for_task(args.task_id).decode())
    backend.forget(args.task_id)
    sys.stdout.write(f"forgot {args.task_id} (deleted {key!r})\n")
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    from .lifecycle import lifecycle_text

    settings, _ = _settings_and_app(args)
    sys.stdout.write(lifecycle_text(settings, args.days))
    return 0


def _cost(args: argparse.Namespace) -> int:
    from .lifecycle import monthly_cost

    report = monthly_cost(
        tasks_per_day=args.tasks_per_day,
        reads_per_task=args.reads_per_task,
        polls_per_task=args.polls_per_task,
        states_per_task=args.states_per_task,
        result_bytes=args.result_bytes,
        retention_days=args.retention_days,
        put_per_1000=args.put_price,
        get_per_1000=args.get_price,
        storage_gb_month=args.storage_price,
    )
    sys.stdout.write(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3result`` console script."""
    parser = argparse.ArgumentParser(prog="s3result", description="Celery results on S3, without boto.")
    sub = parser.add_subparsers(dest="command", required=True)

    def target(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--app", help="the Celery app, as for celery -A (proj.celery or proj.celery:app)")
        group.add_argument("--url", help="a result_backend URL (default: $S3RESULT_URL)")

    demo = sub.add_parser("demo", help="run tasks, a group and a chord on an embedded S3 store (moto server)")
    demo.set_defaults(func=_demo)
    check = sub.add_parser("check", help="show the resolved configuration and probe the store live")
    target(check)
    check.add_argument("--json", action="store_true", help="machine-readable output for CI pipelines")
    check.set_defaults(func=_check)
    get = sub.add_parser("get", help="show one stored result, decoded, with its state")
    target(get)
    get.add_argument("task_id")
    get.add_argument("--json", action="store_true")
    get.set_defaults(func=_get)
    forget = sub.add_parser("forget", help="delete one stored result")
    target(forget)
    forget.add_argument("task_id")
    forget.set_defaults(func=_forget)
    lifecycle = sub.add_parser("lifecycle", help="print the bucket lifecycle rule that expires results")
    target(lifecycle)
    lifecycle.add_argument(
        "--days", type=int, required=True, help="expire results this many days after they are written"
    )
    lifecycle.set_defaults(func=_lifecycle)
    cost = sub.add_parser("cost", help="requests and storage cost per month (AWS S3 Standard list prices by default)")
    cost.add_argument("--tasks-per-day", type=int, required=True)
    cost.add_argument("--reads-per-task", type=float, default=1.0, help="result reads per task (default 1)")
    cost.add_argument("--polls-per-task", type=float, default=0.0, help="pending polls per task (default 0)")
    cost.add_argument(
        "--states-per-task", type=float, default=1.0, help="stored states per task: 1, or 2 with track_started"
    )
    cost.add_argument("--result-bytes", type=int, default=300, help="average stored result size (default 300)")
    cost.add_argument("--retention-days", type=float, default=1.0, help="days a result is kept (lifecycle rule)")
    cost.add_argument("--put-price", type=float, default=PRICE_PUT_PER_1000, help="USD per 1,000 PUT (default 0.005)")
    cost.add_argument("--get-price", type=float, default=PRICE_GET_PER_1000, help="USD per 1,000 GET (default 0.0004)")
    cost.add_argument(
        "--storage-price", type=float, default=PRICE_STORAGE_GB_MONTH, help="USD per GB-month (default 0.023)"
    )
    cost.set_defaults(func=_cost)
    args = parser.parse_args(argv)
    from ..errors import S3ResultError

    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("moto"):
            print("s3result demo needs the embedded store: pip install 's3result[demo]'", file=sys.stderr)
            return 2
        raise
    except S3ResultError as exc:
        print(f"s3result: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a Celery ImproperlyConfigured wrapping our ConfigError, say
        if type(exc).__name__ == "ImproperlyConfigured":
            print(f"s3result: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
