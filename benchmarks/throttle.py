"""Throttling as back-pressure: stores against a store that allows R writes/s, side by side.

    python -m benchmarks.throttle [--rate 150] [--threads 16] [--duration 20] [--fleet]

A throttling proxy (``s3result.testing.faults.FaultProxy(rate=R)``) in front of the kit's moto
server lets R PUT/s through (a token bucket holding R/10) and answers ``503 SlowDown`` above
it, without forwarding; reads are unlimited. Then, one after the other in one run, each client
stores results from ``--threads`` threads as fast as it can for ``--duration`` seconds:

- s3result with default settings, through the real backend's ``store_result``;
- Celery's built-in S3 backend (boto3, standard retry mode: botocore's default), ``store_result``;
- boto3 in adaptive retry mode (a client-side rate limiter), ``put_object``, one shared client.

Per client: stores/s as a fraction of R, SlowDown answers per success (counted at the proxy),
calls raised (results lost), p99 store time. First, moto's own rate through the proxy with no
limit, so a limit moto cannot serve on a loaded machine shows. ``--fleet`` runs real Celery
workers instead (``--workers`` x prefork ``--concurrency``) against one throttled store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer


def _s3result(moto: MotoServer, port: int) -> Callable[[], Callable[[str], None]]:
    from celery import Celery

    app = Celery("throttle-s3result", set_as_current=False)
    app.conf.result_backend = moto.url("s3result").replace(f":{moto.port}/", f":{port}/")

    def per_thread() -> Callable[[str], None]:
        backend = app.backend  # thread-local, as in a worker; the S3 client is per process
        return lambda task_id: backend.store_result(task_id, {"n": task_id}, "SUCCESS")

    return per_thread


def _celery_s3(moto: MotoServer, port: int) -> Callable[[], Callable[[str], None]]:
    from celery import Celery

    app = Celery("throttle-celery", set_as_current=False)
    app.conf.update(
        result_backend="s3",
        s3_bucket=moto.bucket,
        s3_base_path="celery/",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_region="us-east-1",
        s3_access_key_id=moto.access_key,
        s3_secret_access_key=moto.secret_key,
    )

    def per_thread() -> Callable[[str], None]:
        backend = app.backend
        return lambda task_id: backend.store_result(task_id, {"n": task_id}, "SUCCESS")

    return per_thread


def _boto3_adaptive(moto: MotoServer, port: int) -> Callable[[], Callable[[str], None]]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=moto.access_key,
        aws_secret_access_key=moto.secret_key,
        region_name="us-east-1",
        config=Config(retries={"mode": "adaptive"}, s3={"addressing_style": "path"}, max_pool_connections=32),
    )

    def per_thread() -> Callable[[str], None]:
        return lambda task_id: client.put_object(Bucket=moto.bucket, Key=f"adaptive/{task_id}", Body=b'{"n": 1}')

    return per_thread


CLIENTS: dict[str, Callable[[MotoServer, int], Callable[[], Callable[[str], None]]]] = {
    "s3result (defaults)": _s3result,
    "Celery S3 backend (boto3 standard)": _celery_s3,
    "boto3 adaptive": _boto3_adaptive,
}


def _drive(per_thread: Callable[[], Callable[[str], None]], threads: int, duration: float) -> dict[str, Any]:
    """Store from ``threads`` threads until ``duration`` passes: successes, raised, store times."""
    times: list[float] = []
    raised: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    end = [0.0]

    def run() -> None:
        store = per_thread()
        mine: list[float] = []
        errors: list[str] = []
        start.wait()
        while time.monotonic() < end[0]:
            t0 = time.monotonic()
            try:
                store(uuid.uuid4().hex)
            except Exception as exc:  # noqa: BLE001 - counted: a result lost
                errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            else:
                mine.append(time.monotonic() - t0)
        with lock:
            times.extend(mine)
            raised.extend(errors)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    end[0] = time.monotonic() + duration
    began = time.monotonic()
    start.wait()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    times.sort()
    return {
        "stores": len(times),
        "elapsed": elapsed,
        "raised": len(raised),
        "first_errors": sorted(set(raised))[:3],
        "p99": times[int(len(times) * 0.99)] if times else float("nan"),
        "p50": statistics.median(times) if times else float("nan"),
    }


def measure_threads(rate: float, threads: int, duration: float, burst: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate, "threads": threads, "duration": duration, "load": os.getloadavg()}
    with MotoServer(bucket="s3result-throttle") as moto:
        proxy = FaultProxy(moto.host, moto.port, latency=0.0)
        for name, make in CLIENTS.items():
            proxy.throttle(None)  # what this client can do here with no limit, for 5 s
            unlimited = _drive(make(moto, proxy.port), threads, min(duration, 5.0))
            proxy.throttle(rate, burst=burst)  # a full bucket for each
            before = proxy.stats["slowdown"]
            result = _drive(make(moto, proxy.port), threads, duration)
            result["slowdowns"] = proxy.stats["slowdown"] - before
            result["unlimited"] = unlimited["stores"] / unlimited["elapsed"]
            out[name] = result
            print(_line(name, result, rate), file=sys.stderr, flush=True)
        proxy.close()
    out["load_after"] = os.getloadavg()
    return out


def _line(name: str, r: dict[str, Any], rate: float) -> str:
    per_s = r["stores"] / r["elapsed"]
    per_success = r["slowdowns"] / r["stores"] if r["stores"] else float("inf")
    return (
        f"| {name} | {per_s:.0f} | {per_s / rate:.2f} | {per_success:.3f} | {r['raised']} | "
        f"{r['p50'] * 1000:.0f} | {r['p99'] * 1000:.0f} | {r.get('unlimited', float('nan')):.0f} |"
    )


def report(results: dict[str, Any], command: str) -> str:
    rate = results["rate"]
    lines = [
        f"Command: `{command}`",
        "",
        f"{results['threads']} threads, {results['duration']:g} s each, store limit {rate:g} PUT/s; "
        "the last column is what the client stored per second through the same proxy with no limit (5 s). "
        f"Load average before: {', '.join(f'{x:.1f}' for x in results['load'])}; after: "
        f"{', '.join(f'{x:.1f}' for x in results['load_after'])} (2 cores, shared).",
        "",
        "| client | stores/s | fraction of limit | SlowDowns per success | calls raised | p50 ms | p99 ms | unlimited stores/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CLIENTS:
        lines.append(_line(name, results[name], rate))
    for name in CLIENTS:
        for error in results[name]["first_errors"]:
            lines.append(f"\n{name} raised, e.g.: `{error}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="PUT/s the store allows (default 150)")
    parser.add_argument("--burst", type=float, default=None, help="the store's burst, requests (default rate/10)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per client")
    parser.add_argument("--only", default="", help="comma-separated client names to run (default: all)")
    parser.add_argument("--fleet", action="store_true", help="real Celery workers instead of threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.throttle " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.fleet:
        from .throttle_fleet import fleet_report, measure_fleet

        print(fleet_report(measure_fleet(args.rate, args.workers, args.concurrency, args.tasks, args.burst), command))
        return 0
    if args.only:
        keep = [n for n in CLIENTS if any(part.strip() and part.strip() in n for part in args.only.split(","))]
        for name in list(CLIENTS):
            if name not in keep:
                del CLIENTS[name]
    print(report(measure_threads(args.rate, args.threads, args.duration, args.burst), command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
