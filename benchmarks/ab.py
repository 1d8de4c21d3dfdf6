"""Client CPU of two s3result trees side by side, rounds interleaved (A B A B ...), one process.

    python -m benchmarks.ab OLD_TREE [-n 2000] [--rounds 15]

``OLD_TREE`` holds another ``s3result/`` package (``git worktree add /tmp/old <commit>``, or
``git archive <commit> s3result | tar -x -C /tmp/old``); it is imported as ``s3result_old``
(its imports are relative). Both talk to the same fixed-response nginx (benchmarks.fixed_server,
which returns the result checksum). Interleaving puts both under the same machine load at the
same moments, which a shared machine needs for a difference of a few percent to show; each
figure is the median of the rounds, with the min-max range, in CPU microseconds per operation.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fixed_server import FixedServer
from .run import AK, BUCKET, SK, _pin


def _load_old(tree: str) -> Any:
    holder = tempfile.mkdtemp(prefix="s3result-ab-")
    shutil.copytree(Path(tree) / "s3result", Path(holder) / "s3result_old")
    sys.path.insert(0, holder)
    return importlib.import_module("s3result_old.backend")


def _backend(module: Any, endpoint: str) -> Any:
    from celery import Celery

    host = endpoint.split("://", 1)[1]
    url = f"s3result+http://{AK}:{SK.replace('/', '%2F').replace('+', '%2B')}@{host}/{BUCKET}/r?conditional_writes=etag"
    return module.S3Backend(app=Celery("ab", set_as_current=False), url=url)


def _ops(backend: Any) -> dict[str, Callable[[], None]]:
    client = backend.client
    return {
        "store_result (first write)": lambda: backend.store_result(f"w{uuid.uuid4().hex}", 42, "SUCCESS"),
        "get_task_meta, finished": lambda: backend.get_task_meta("x-done", cache=False),
        "get_task_meta, pending (a 404)": lambda: backend.get_task_meta("x-pending", cache=False),
        "one PUT request": lambda: client.put("r/celery-task-meta-y", b"x" * 180),
        "one GET request": lambda: client.get("r/celery-task-meta-x-done"),
    }


def _round(fn: Callable[[], None], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old_tree")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    _pin(0)
    old_module = _load_old(args.old_tree)
    new_module = importlib.import_module("s3result.backend")
    server = FixedServer(cpu=1)
    try:
        sides = {"old": _ops(_backend(old_module, server.endpoint)), "new": _ops(_backend(new_module, server.endpoint))}
        figures: dict[str, dict[str, list[float]]] = {}
        for op in sides["new"]:
            for side in sides.values():
                _round(side[op], 100)  # warm up
            for _ in range(args.rounds):
                for name, side in sides.items():
                    figures.setdefault(op, {}).setdefault(name, []).append(_round(side[op], args.n))
    finally:
        server.close()
    print(f"| operation | old | new | new / old |  ({args.rounds} interleaved rounds of {args.n})")
    print("|---|---|---|---|")
    for op, row in figures.items():
        old, new = statistics.median(row["old"]), statistics.median(row["new"])
        fmt = {k: f"{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})" for k, v in row.items()}
        print(f"| {op} | {fmt['old']} | {fmt['new']} | {new / old:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
