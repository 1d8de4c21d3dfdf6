"""Side-by-side measurements of s3result, Celery's built-in S3 backend (boto3) and raw floors.

    python -m benchmarks.run            # writes benchmarks/RESULTS.md

Client CPU is process CPU time per operation, with this process pinned to CPU 0 and the
fixed-response server (nginx) pinned to CPU 1, so the server's cost is out. Each figure is
the median of several rounds, with the min-max range. Requests are counted at the server.
Nothing here is a pass/fail test: machines are shared and noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3result.s3 import sigv4

from .fixed_server import FixedServer

ROOT = Path(__file__).resolve().parents[1]
AK, SK = "AKIDBENCHMARK0000000", "bench/secret+key"
BUCKET = "bench"
# The operations the design holds to one request each.
_ONE_REQUEST_OPS = ("read a finished result", "poll a pending result", "first write of a state")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _unpin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _rounds(fn: Callable[[int], None], n: int, rounds: int) -> list[float]:
    """CPU microseconds per operation, one figure per round."""
    fn(min(n, 50))  # warm up: pools, caches, imports
    out = []
    for _ in range(rounds):
        start = time.process_time()
        fn(n)
        out.append((time.process_time() - start) / n * 1e6)
    return out


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _med(values: list[float]) -> float:
    return statistics.median(values)


# -- the clients ----------------------------------------------------------------------------


def s3result_app(endpoint: str, **extra: str) -> Any:
    from celery import Celery

    host = endpoint.split("://", 1)[1]
    query = "&".join(f"{k}={v}" for k, v in {"conditional_writes": "etag", **extra}.items())
    app = Celery("bench-s3result", set_as_current=False)
    app.conf.result_backend = (
        f"s3result+http://{AK}:{SK.replace('/', '%2F').replace('+', '%2B')}@{host}/{BUCKET}/r?{query}"
    )
    return app


def celery_s3_app(endpoint: str, access: str = AK, secret: str = SK) -> Any:
    from celery import Celery

    app = Celery("bench-celery-s3", set_as_current=False)
    app.conf.update(
        result_backend="s3://",
        s3_bucket=BUCKET,
        s3_base_path="r/",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id=access,
        s3_secret_access_key=secret,
    )
    return app


def _signed_request(method: str, host: str, path: str, body: bytes = b"") -> dict[str, str]:
    headers = dict(
        sigv4.sign_s3(
            method=method,
            host=host,
            path=path,
            body_sha256=sigv4.payload_hash(body),
            access_key=AK,
            secret_key=SK,
            region="us-east-1",
            now=time.time(),
        )
    )
    headers["Host"] = host
    if body or method == "PUT":
        headers["Content-Length"] = str(len(body))
    return headers


class HttpClientFloor:
    """Keep-alive http.client with requests signed once, ahead of time: the floor."""

    def __init__(self, port: int) -> None:
        self.host = f"127.0.0.1:{port}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.prebuilt = {
            "GET": (
                "GET",
                f"/{BUCKET}/r/celery-task-meta-x-done",
                _signed_request("GET", self.host, f"/{BUCKET}/r/celery-task-meta-x-done"),
                None,
            ),
            "PUT": (
                "PUT",
                f"/{BUCKET}/r/celery-task-meta-y",
                _signed_request("PUT", self.host, f"/{BUCKET}/r/celery-task-meta-y", b"x" * 180),
                b"x" * 180,
            ),
        }

    def op(self, kind: str) -> None:
        method, path, headers, body = self.prebuilt[kind]
        self.conn.request(method, path, body=body, headers=headers)
        self.conn.getresponse().read()


class RawSocketFloor:
    """Pre-serialised request bytes over one socket; the response read by Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host = f"127.0.0.1:{port}"
        path = f"/{BUCKET}/r/celery-task-meta-x-done"
        headers = _signed_request("GET", host, path)
        self.get = (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()

    def op(self) -> None:
        self.sock.sendall(self.get)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += self.sock.recv(65536)


# -- measurements ---------------------------------------------------------------------------


def cpu_per_operation(server: FixedServer, n: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    ours = s3result_app(server.endpoint).backend
    theirs = celery_s3_app(server.endpoint).backend
    ours.get_task_meta("x-done", cache=False)
    results: dict[str, dict[str, list[float]]] = {}

    def ops(backend: Any) -> dict[str, Callable[[int], None]]:
        return {
            "store_result (first write)": lambda k: (
                [backend.store_result(f"w{uuid.uuid4().hex}", 42, "SUCCESS") for _ in range(k)] and None
            ),
            "get_task_meta, finished": lambda k: (
                [backend.get_task_meta("x-done", cache=False) for _ in range(k)] and None
            ),
            "get_task_meta, pending": lambda k: (
                [backend.get_task_meta("x-pending", cache=False) for _ in range(k)] and None
            ),
            "forget": lambda k: [backend.forget("x-gone") for _ in range(k)] and None,
        }

    for name, backend in (("s3result", ours), ("celery s3 (boto3)", theirs)):
        for op, fn in ops(backend).items():
            results.setdefault(op, {})[name] = _rounds(fn, n, rounds)
    floor = HttpClientFloor(server.port)
    raw = RawSocketFloor(server.port)
    client = ours.client
    results["one GET request"] = {
        "s3result": _rounds(lambda k: [client.get("r/celery-task-meta-x-done") for _ in range(k)] and None, n, rounds),
        "http.client floor": _rounds(lambda k: [floor.op("GET") for _ in range(k)] and None, n, rounds),
        "raw socket floor": _rounds(lambda k: [raw.op() for _ in range(k)] and None, n, rounds),
    }
    results["one PUT request"] = {
        "s3result": _rounds(
            lambda k: [client.put("r/celery-task-meta-y", b"x" * 180) for _ in range(k)] and None, n, rounds
        ),
        "http.client floor": _rounds(lambda k: [floor.op("PUT") for _ in range(k)] and None, n, rounds),
    }
    return results


def requests_per_operation(server: FixedServer) -> dict[str, dict[str, int]]:
    ours = s3result_app(server.endpoint).backend
    theirs = celery_s3_app(server.endpoint).backend
    out: dict[str, dict[str, int]] = {}
    for name, backend in (("s3result", ours), ("celery s3 (boto3)", theirs)):
        backend.get_task_meta("x-done", cache=False)  # connect, probe, warm up
        for op, fn in {
            "read a finished result": lambda b=backend: b.get_task_meta("x-done", cache=False),
            "poll a pending result": lambda b=backend: b.get_task_meta("x-pending", cache=False),
            "first write of a state": lambda b=backend: b.store_result(f"w{uuid.uuid4().hex}", 1, "SUCCESS"),
            "forget": lambda b=backend: b.forget("x-gone"),
            "GroupResult.get() of 100 finished": lambda b=backend: _group(b, 100).get(timeout=30),
        }.items():
            time.sleep(0.05)
            before = server.requests_logged()
            fn()
            time.sleep(0.2)  # nginx writes its log line after the response
            out.setdefault(op, {})[name] = server.requests_logged() - before
    return out


def requests_on_moto() -> dict[str, dict[str, int]]:
    """Requests per state change on a real store (moto), counted at the wire by a proxy.

    The fixed-response server cannot show these: its PUT always succeeds, so a second state
    of the same task, or a late duplicate, never meets an existing key.
    """
    from celery import Celery

    from s3result.testing.proxy import CountingProxy
    from s3result.testing.store import MotoServer

    out: dict[str, dict[str, int]] = {}
    with MotoServer(bucket=BUCKET) as moto:
        proxy = CountingProxy("127.0.0.1", moto.port)
        try:
            secret = moto.secret_key.replace("/", "%2F").replace("+", "%2B")
            ours = Celery("bench-moto", set_as_current=False)
            ours.conf.result_backend = f"s3result+http://{moto.access_key}:{secret}@127.0.0.1:{proxy.port}/{BUCKET}/r"
            theirs = celery_s3_app(f"http://127.0.0.1:{proxy.port}", moto.access_key, moto.secret_key)
            for name, backend in (("s3result", ours.backend), ("celery s3 (boto3)", theirs.backend)):
                backend.store_result(str(uuid.uuid4()), 0, "SUCCESS")  # connect; s3result probes here
                tid = str(uuid.uuid4())
                for op, fn in {
                    "first write of a state (STARTED)": lambda b=backend, t=tid: b.store_result(t, None, "STARTED"),
                    "a state update (STARTED -> SUCCESS)": lambda b=backend, t=tid: b.store_result(t, 1, "SUCCESS"),
                    "a late duplicate after SUCCESS (not stored)": lambda b=backend, t=tid: b.store_result(
                        t, None, "STARTED"
                    ),
                    "read a finished result": lambda b=backend, t=tid: b.get_task_meta(t, cache=False),
                }.items():
                    before = proxy.total
                    fn()
                    out.setdefault(op, {})[name] = proxy.total - before
                status = backend.get_task_meta(tid, cache=False)["status"]
                if status != "SUCCESS":
                    raise RuntimeError(f"{name}: the late duplicate replaced SUCCESS with {status}")
        finally:
            proxy.close()
    return out


def _group(backend: Any, n: int) -> Any:
    from celery.result import AsyncResult, GroupResult

    return GroupResult(
        str(uuid.uuid4()),
        [AsyncResult(f"g{i}-done", backend=backend, app=backend.app) for i in range(n)],
        app=backend.app,
    )


def group_wall(endpoint: str, rounds: int, app_factory: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Wall time of GroupResult.get() of 100, the clients taking turns so noise hits both."""
    backends = {name: make().backend for name, make in app_factory.items()}
    for backend in backends.values():
        _group(backend, 100).get(timeout=60)  # connect, probe, start the executor
    out: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(rounds):
        for name, backend in backends.items():
            group = _group(backend, 100)
            start = time.perf_counter()
            group.get(timeout=60)
            out[name].append((time.perf_counter() - start) * 1000)
    return out


_COLD = """
import time, sys
t0 = time.perf_counter()
from celery import Celery
app = Celery(set_as_current=False)
app.conf.update({conf})
app.backend.store_result('cold-start', 42, 'SUCCESS')
elapsed = time.perf_counter() - t0
# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child forked from this (large) benchmark
# process would report the parent's peak. VmHWM starts afresh with the new program.
peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(elapsed, peak / 1024)
"""


def _clean_venv(where: Path, *packages: str) -> Path:
    """A fresh virtualenv with only ``packages`` installed, compiled to .pyc as pip does.

    A user's worker image holds celery and its result backend, nothing else; the development
    venv adds an editable-install finder, coverage's and setuptools' .pth hooks, which every
    start pays for (~15 ms here) and which would blur the comparison.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *packages],
        check=True,
        capture_output=True,
    )
    return python


def cold_start(server: FixedServer, rounds: int) -> dict[str, dict[str, list[float]]]:
    """New process to first result stored, in clean venvs, the two clients taking turns.

    Taking turns (ABAB..., not AA..BB..) spreads the noise of a shared machine over both.
    """
    host = server.endpoint.split("://", 1)[1]
    confs = {
        "s3result": {"result_backend": f"s3result+http://{AK}:x@{host}/{BUCKET}/r?conditional_writes=etag"},
        "celery s3 (boto3)": {
            "result_backend": "s3://",
            "s3_bucket": BUCKET,
            "s3_base_path": "r/",
            "s3_endpoint_url": server.endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": AK,
            "s3_secret_access_key": "x",
        },
    }
    from importlib.metadata import version

    celery_pin = f"celery=={version('celery')}"
    out: dict[str, dict[str, list[float]]] = {
        name: {"wall ms": [], "import+first store ms": [], "peak RSS MiB": []} for name in confs
    }
    with tempfile.TemporaryDirectory() as tmp:
        pythons = {
            "s3result": _clean_venv(Path(tmp) / "s3result", celery_pin, str(ROOT)),
            "celery s3 (boto3)": _clean_venv(Path(tmp) / "celery-s3", celery_pin, f"boto3=={version('boto3')}"),
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COVERAGE", "AWS_"))}
        for _ in range(2):  # warm the page cache; not counted
            for name, conf in confs.items():
                subprocess.run(
                    [pythons[name], "-c", _COLD.format(conf=repr(conf))],
                    check=True,
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                )
        for _ in range(rounds):
            for name, conf in confs.items():
                start = time.perf_counter()
                proc = subprocess.run(
                    [pythons[name], "-c", _COLD.format(conf=repr(conf))], capture_output=True, env=env, cwd=tmp
                )
                wall = (time.perf_counter() - start) * 1000
                if proc.returncode != 0:
                    raise RuntimeError(f"cold start of {name} failed: {proc.stderr.decode()[-500:]}")
                seconds, peak = proc.stdout.decode().split()
                out[name]["wall ms"].append(wall)
                out[name]["import+first store ms"].append(float(seconds) * 1000)
                out[name]["peak RSS MiB"].append(float(peak))
    return out


def _tree_size(path: Path) -> tuple[float, int]:
    total, files = 0, 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_size
            files += 1
    return total / 1e6, files


def footprint() -> dict[str, tuple[float, int]]:
    """Installed size added on top of `celery`, by pip install --target into fresh folders."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        specs = {
            "celery": ["celery"],
            "celery + s3result": ["celery", str(ROOT)],
            "celery + boto3 (celery[s3])": ["celery", "boto3"],
        }
        for name, spec in specs.items():
            target = base / name.replace(" ", "_").replace("+", "").replace("(", "").replace(")", "").replace(
                "[", ""
            ).replace("]", "")
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(target), *spec],
                check=True,
                capture_output=True,
            )
            out[name] = _tree_size(target)
    return out


def e2e_ops(endpoint: str, access: str, secret: str, bucket: str, n: int) -> dict[str, dict[str, float]]:
    """Operations per second end to end against a real store (its own speed included)."""
    from celery import Celery

    out: dict[str, dict[str, float]] = {}
    host = endpoint.split("://", 1)[1]
    ours = Celery(set_as_current=False)
    ours.conf.result_backend = (
        f"s3result+http://{access}:{secret.replace('/', '%2F').replace('+', '%2B')}@{host}/{bucket}/e2e"
    )
    theirs = celery_s3_app(endpoint, access, secret)
    theirs.conf.s3_bucket = bucket
    for name, app in (("s3result", ours), ("celery s3 (boto3)", theirs)):
        backend = app.backend
        ids = [f"e2e-{uuid.uuid4().hex}" for _ in range(n)]
        backend.store_result("warm", 1, "SUCCESS")
        start = time.perf_counter()
        for tid in ids:
            backend.store_result(tid, 42, "SUCCESS")
        writes = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for tid in ids:
            backend.get_task_meta(tid, cache=False)
        reads = n / (time.perf_counter() - start)
        out[name] = {"store_result/s": writes, "get_task_meta/s": reads}
    return out


# -- report ---------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("s3result", "celery", "kombu", "httpx", "httpcore", "boto3", "botocore", "moto"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - missing is reported as such
            out[pkg] = "not installed"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=str(Path(__file__).parent / "RESULTS.md"))
    parser.add_argument("--skip-footprint", action="store_true")
    parser.add_argument("--skip-stores", action="store_true", help="skip the moto and Ceph end-to-end runs")
    parser.add_argument("--skip-cold-start", action="store_true", help="skip the two clean venvs and their starts")
    parser.add_argument("--skip-chords", action="store_true", help="skip the chord runs (benchmarks.chords)")
    parser.add_argument("--skip-waits", action="store_true", help="skip the polling runs (benchmarks.waits)")
    parser.add_argument(
        "--skip-cold-latency", action="store_true", help="skip the cold starts at 20 ms per request (benchmarks.cold)"
    )
    parser.add_argument("--chord-sizes", default="10,100,1000")
    parser.add_argument("--chord-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    _pin(0)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    server = FixedServer(cpu=1)
    try:
        cpu = cpu_per_operation(server, args.n, args.rounds)
        reqs = requests_per_operation(server)
        cold = {} if args.skip_cold_start else cold_start(server, max(args.rounds, 15))
        group_fixed = group_wall(
            server.endpoint,
            max(args.rounds, 15),
            {
                "s3result": lambda: s3result_app(server.endpoint),
                "celery s3 (boto3)": lambda: celery_s3_app(server.endpoint),
            },
        )
    finally:
        server.close()
    # Real stores and chord workers are started from here and inherit the affinity: give
    # them every CPU back, so a store does not share one core with its client.
    _unpin()
    stores: dict[str, dict[str, dict[str, float]]] = {}
    reqs_moto: dict[str, dict[str, int]] = {}
    if not args.skip_stores:
        reqs_moto = requests_on_moto()
        from conformance.servers import ceph_target, moto_target

        for name, launch in (("moto", moto_target), ("ceph", ceph_target)):
            with launch(bucket="bench") as target:
                stores[name] = e2e_ops(target.endpoint, target.access_key, target.secret_key, target.bucket, 300)
    foot = {} if args.skip_footprint else footprint()
    report = _report(command, args, cpu, reqs, reqs_moto, cold, group_fixed, stores, foot)
    if not args.skip_chords:
        from . import chords  # imports the e2e test helpers: only when chords are measured

        report += chords.run([int(size) for size in args.chord_sizes.split(",")], args.chord_repeats)
    if not args.skip_cold_latency:
        from . import cold  # moto and two more clean venvs: only when measured

        report += cold.report(cold.measure(7, 0.02), 7, 0.02, "python -m benchmarks.cold --rounds 7")
    if not args.skip_waits:
        from . import waits  # a real worker and moto: only when waits are measured

        report += waits.report(waits.measure(), command.strip())
    Path(args.output).write_text(report)
    print(Path(args.output).read_text())
    return 0


def _cold_ratio(cold: Any) -> float:
    """How many times s3result's cold start fits in Celery's S3 backend's (wall time)."""
    return _med(cold["celery s3 (boto3)"]["wall ms"]) / _med(cold["s3result"]["wall ms"])


def _cold_lines(cold: Any) -> list[str]:
    lines = [
        "",
        "## Cold start: new process to first result stored (fixed-response nginx)",
        "",
        "Each client in a fresh venv holding only celery and itself (pip-installed, compiled),",
        f"the two taking turns, {len(cold['s3result']['wall ms'])} starts each after 2 unmeasured ones. Wall: from",
        "spawning `python -c` to its exit; inner: from the first import to the stored result.",
        "",
        "| client | wall ms | import + first store ms | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    for name, row in cold.items():
        lines.append(
            f"| {name} | {_fmt(row['wall ms'])} | {_fmt(row['import+first store ms'])} | {_fmt(row['peak RSS MiB'])} |"
        )
    lines.append(f"\nWall-time ratio: s3result takes 1/{_cold_ratio(cold):.1f} of Celery's S3 backend.")
    return lines


def _report(
    command: str, args: Any, cpu: Any, reqs: Any, reqs_moto: Any, cold: Any, group_fixed: Any, stores: Any, foot: Any
) -> str:
    v = _versions()
    lines = [
        "# s3result benchmarks",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- command: `{command.strip()}` (from the repository root, after `pip install -e '.[test,bench]'`)",
        f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        "client pinned to CPU 0, nginx to CPU 1",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- method: process CPU time / operations, {args.rounds} rounds of {args.n}; median (min-max), microseconds",
        "",
        "## Client CPU per operation (fixed-response nginx)",
        "",
        "| operation | s3result | celery s3 (boto3) | ratio |",
        "|---|---|---|---|",
    ]
    for op in ("store_result (first write)", "get_task_meta, finished", "get_task_meta, pending", "forget"):
        ours, theirs = cpu[op]["s3result"], cpu[op]["celery s3 (boto3)"]
        lines.append(f"| {op} | {_fmt(ours)} | {_fmt(theirs)} | {_med(theirs) / _med(ours):.1f}x less |")
    lines += [
        "",
        "| one request | s3result | http.client floor | raw socket floor | s3result / http.client |",
        "|---|---|---|---|---|",
    ]
    for op in ("one GET request", "one PUT request"):
        row = cpu[op]
        raw = _fmt(row["raw socket floor"]) if "raw socket floor" in row else "-"
        lines.append(
            f"| {op} | {_fmt(row['s3result'])} | {_fmt(row['http.client floor'])} | {raw} | "
            f"{_med(row['s3result']) / _med(row['http.client floor']):.2f}x |"
        )
    lines += [
        "",
        "## Requests per operation (counted in nginx's access log)",
        "",
        "| operation | s3result | celery s3 (boto3) |",
        "|---|---|---|",
    ]
    for op, row in reqs.items():
        lines.append(f"| {op} | {row['s3result']} | {row['celery s3 (boto3)']} |")
    if reqs_moto:
        lines += [
            "",
            "Where the key already exists, on a real store (moto; counted at the wire by a proxy):",
            "",
            "| operation | s3result | celery s3 (boto3) |",
            "|---|---|---|",
        ]
        for op, row in reqs_moto.items():
            lines.append(f"| {op} | {row['s3result']} | {row['celery s3 (boto3)']} |")
    if cold:
        lines += _cold_lines(cold)
    lines += [
        "",
        "## GroupResult.get() of 100 finished results, wall ms (fixed-response nginx)",
        "",
        f"The two clients taking turns, {len(next(iter(group_fixed.values())))} reads each after an unmeasured one.",
        "",
        "| client | wall ms |",
        "|---|---|",
    ]
    for name, row in group_fixed.items():
        lines.append(f"| {name} | {_fmt(row)} |")
    g = _med(group_fixed["celery s3 (boto3)"]) / _med(group_fixed["s3result"])
    lines.append(f"\nRatio: {g:.1f}x faster.")
    if stores:
        lines += [
            "",
            "## End to end against real stores (their own speed included), 300 operations each, sequential",
            "",
            "| store | client | store_result/s | get_task_meta/s |",
            "|---|---|---|---|",
        ]
        for store, rows in stores.items():
            for name, row in rows.items():
                lines.append(f"| {store} | {name} | {row['store_result/s']:.0f} | {row['get_task_meta/s']:.0f} |")
    if foot:
        base_mb, base_files = foot["celery"]
        lines += [
            "",
            "## Installed footprint on top of celery (pip install --target, no .pyc)",
            "",
            "| install | MB | files | added MB | added files |",
            "|---|---|---|---|---|",
        ]
        for name, (mb, files) in foot.items():
            lines.append(f"| {name} | {mb:.1f} | {files} | {mb - base_mb:+.1f} | {files - base_files:+d} |")
        ours = foot["celery + s3result"][0] - base_mb
        boto = foot["celery + boto3 (celery[s3])"][0] - base_mb
        lines.append(f"\ns3result adds {ours / boto * 100:.0f}% of what boto3 adds.")
    lines += ["", "## Bars (../shared/DESIGN.md)", ""]
    bars = [
        (
            "CPU per read >= 8x less",
            _med(cpu["get_task_meta, finished"]["celery s3 (boto3)"])
            / _med(cpu["get_task_meta, finished"]["s3result"]),
            8,
            True,
        ),
        (
            "CPU per store_result >= 6x less",
            _med(cpu["store_result (first write)"]["celery s3 (boto3)"])
            / _med(cpu["store_result (first write)"]["s3result"]),
            6,
            True,
        ),
        (
            "CPU per request <= 2x http.client",
            _med(cpu["one GET request"]["s3result"]) / _med(cpu["one GET request"]["http.client floor"]),
            2,
            False,
        ),
        ("group of 100 >= 10x faster", g, 10, True),
        (
            "requests per read, pending poll, first write == 1",
            max(reqs[op]["s3result"] for op in _ONE_REQUEST_OPS),
            1,
            False,
        ),
    ]
    if cold:
        bars.append(("cold start <= 1/2", 1 / _cold_ratio(cold), 0.5, False))
    if foot:
        bars.append(("footprint <= 15% of boto3", ours / boto, 0.15, False))
    for name, value, bar, higher in bars:
        ok = value >= bar if higher else value <= bar
        lines.append(f"- {name}: {value:.2f} -> {'met' if ok else 'MISSED'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
