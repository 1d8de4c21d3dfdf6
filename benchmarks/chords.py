"""Chord completion, native (compare-and-swap counter) against the chord_unlock fallback.

    python -m benchmarks.chords          # appends a section to benchmarks/RESULTS.md

For chords of 10, 100 and 1,000 parts run by real workers (4 processes x 4 threads) on moto,
it measures the wall time from the end of the last header task (the latest ``date_done`` of
the header results, stamped as each part's result is stored) to the start of the body (the
``received`` line of the workers' logs), and the S3 requests made for the whole chord
made by the workers (counted at the wire by a proxy the workers go through; the client
polls the store directly, since Celery's ``AsyncResult.get()`` re-reads every header result
at each poll interval, which says more about the poll interval than about the chord). Native mode is the default (moto passes the probe); the fallback is
forced with conditional_writes=disabled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import chord

from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer
from tests.e2e.conftest import Worker, point_app_at

_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/[^\]]+\] Task tests\.e2e\.app\.(\w+)\[([^\]]+)\] (received|succeeded)"
)


def _stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _body_received(logs: list[Path], body_id: str) -> float:
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m and m.group(2) == "collect" and m.group(3) == body_id and m.group(4) == "received":
                return _stamp(m.group(1))
    raise RuntimeError("the chord body never started")


def _last_part_done(backend: object, part_ids: list[str]) -> float:
    metas = [backend.get_task_meta(pid, cache=False) for pid in part_ids]  # type: ignore[attr-defined]
    return max(
        m["date_done"].timestamp()
        if hasattr(m["date_done"], "timestamp")
        else dt.datetime.fromisoformat(m["date_done"]).timestamp()
        for m in metas
    )


MODES = {"native": ("native (CAS counter)", ""), "unlock": ("chord_unlock fallback", "?conditional_writes=disabled")}


def run(sizes: list[int], repeats: int, modes: tuple[str, ...] = ("native", "unlock"), title: str = "") -> str:
    rows = []
    with MotoServer(bucket="chords") as moto:
        proxy = CountingProxy("127.0.0.1", moto.port)
        for mode, query in (MODES[m] for m in modes):
            path = f"{moto.bucket}/{uuid.uuid4().hex[:6]}{query}"
            url = f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{proxy.port}/{path}"
            # The client polls the store directly: what is counted is what the workers do.
            client_url = f"s3result+http://{moto.access_key}:{moto.secret_key}@127.0.0.1:{moto.port}/{path}"
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                broker = tmp / "broker"
                workers = [
                    Worker(url, tmp, pool="threads", concurrency=4, name=f"w{i}", broker_dir=broker) for i in range(4)
                ]
                for w in workers:
                    w.start()
                try:
                    module = point_app_at(client_url, broker)
                    for size in sizes:
                        lat, reqs = [], []
                        for _ in range(repeats):
                            before = proxy.total
                            res = chord(module.part.s(i) for i in range(size))(module.collect.s("bench"))
                            assert res.get(timeout=600, interval=0.2) == sum(range(size))
                            time.sleep(1.0)  # let the last log lines land
                            reqs.append(proxy.total - before)
                            part_ids = [r.id for r in res.parent.results] if res.parent else []
                            body = _body_received([w.log for w in workers], res.id)
                            lat.append((body - _last_part_done(module.app.backend, part_ids)) * 1000)
                        rows.append((mode, size, statistics.median(lat), min(lat), max(lat), statistics.median(reqs)))
                        print(rows[-1], flush=True)
                finally:
                    for w in workers:
                        w.stop()
        proxy.close()
    lines = [
        "",
        f"## Chord completion, 4 worker processes x 4 threads, moto (python -m benchmarks.chords){title}",
        "",
        "Wall time from the end of the last header task to the start of the body (workers' log",
        "timestamps, millisecond resolution), and S3 requests for the whole chord (counted at the",
        "wire, workers only; the client's polling is not counted). Median (min-max).",
        "",
        "| mode | parts | last part -> body start, ms | S3 requests per chord |",
        "|---|---|---|---|",
    ]
    for mode, size, med, lo, hi, req in rows:
        lines.append(f"| {mode} | {size} | {med:.0f} ({lo:.0f}-{hi:.0f}) | {req:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="native,unlock", help="native, unlock or both")
    parser.add_argument("--title", default="", help="appended to the section's heading (e.g. the commit)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "RESULTS.md"))
    args = parser.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    section = run([int(s) for s in args.sizes.split(",")], args.repeats, modes, args.title)
    with open(args.output, "a") as f:
        f.write(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
