"""A rolling upgrade: workers of two releases count the same native chords, and each body runs once.

Old workers run the code of ``OLD`` (``code_at``: ``git archive`` of that commit, first on the
worker's path), new ones this tree's. The chord counter, tree node and mark formats are the
wire between them: a chord made by either producer is counted by both kinds of worker at once.
The geometry a chord counts in is decided by its producer and travels in the mark, and a new
producer's geometries use the arithmetic old workers know, so the upgrade may go in either
order (producers first or workers first).

Reusable for any release pair: ``code_at(commit)`` gives a tree, ``Worker(code=tree)`` runs it,
and ``_apply_with`` applies chords from a producer process running that tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from s3result.testing.store import MotoServer

from .conftest import ROOT, Worker, point_app_at

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The release the fleet upgrades from (main before small chords were fitted to their size).
OLD = "d689a74"
#: Sizes that count in the root (10: an old producer's), in a tree the old and new producers shape
#: differently (64: fan-in 4; 200; 500: the staggered stripes, flat) and the staggered tree both use (1,100).
SIZES = (10, 64, 200, 500, 1100)

_PRODUCER = """
import json, sys
from celery import chord
from tests.e2e import app as module
out = []
for size, marker in json.loads(sys.argv[1]):
    res = chord(module.part.s(i) for i in range(size))(module.collect.s(marker))
    out.append(res.id)
import s3result
print(json.dumps([s3result.__file__, out]))
"""


def _apply_with(code: Path, env: dict[str, str], chords: list[tuple[int, str]]) -> list[str]:
    """Apply chords from a producer process running ``code``; the ids of their bodies."""
    done = subprocess.run(
        [sys.executable, "-c", _PRODUCER, json.dumps(chords)],
        cwd=code,
        env={**os.environ, **env, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    source, ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(source).parents[1] == code, f"the producer imported {source}, not the code at {code}"
    return list(ids)


@pytest.mark.parametrize("producer", ["old", "new"])
def test_old_and_new_workers_count_one_chord(
    producer: str, moto_server: MotoServer, tmp_path: Path, code_at: Callable[[str], Path]
) -> None:
    old = code_at(OLD)
    url = moto_server.url(prefix=f"upgrade-{producer}")
    broker = tmp_path / "broker"
    calls = tmp_path / "calls"
    calls.mkdir()
    env = {"E2E_CALLS_DIR": str(calls)}
    fleet = [
        Worker(
            url, tmp_path, pool="threads", concurrency=4, name=f"{kind}{i}", broker_dir=broker, extra_env=env, code=code
        )
        for i, (kind, code) in enumerate([("old", old), ("new", ROOT), ("old", old), ("new", ROOT)])
    ]
    for w in fleet:
        assert _imports_from(w) == w.code, f"worker {w.log.name} would not run the code it was given"
        w.start()
    try:
        module = point_app_at(url, broker)
        markers = [(size, f"{producer}-{size}-{uuid.uuid4().hex[:8]}") for size in SIZES]
        producer_env = {"E2E_BACKEND_URL": url, "E2E_BROKER_DIR": str(broker), "E2E_CALLS_DIR": str(calls)}
        ids = _apply_with(old if producer == "old" else ROOT, producer_env, markers)
        for (size, _marker), body_id in zip(markers, ids, strict=True):
            try:
                assert AsyncResult(body_id, app=module.app).get(timeout=240, interval=0.2) == sum(range(size))
            except Exception:
                print("\n".join(w.tail(3000) for w in fleet))
                raise
        time.sleep(1.0)  # room for a second (wrong) firing to show up
        for size, marker in markers:
            ran = sorted(calls.glob(f"{marker}.*"))
            assert len(ran) == 1, f"the body of the chord of {size} ran {len(ran)} times"
            assert ran[0].read_text() == ",".join(map(str, range(size)))
        counted = _parts_run_by(fleet, module)
        assert counted["old"] and counted["new"], f"not both releases counted parts: {counted}"
    finally:
        for w in fleet:
            w.stop()


def _imports_from(w: Worker) -> Path:
    """The source tree whose ``s3result`` the worker's interpreter imports."""
    found = subprocess.run(
        [sys.executable, "-c", "import s3result; print(s3result.__file__)"],
        cwd=w.code,
        env=w.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip()).parents[1]


def _parts_run_by(fleet: list[Worker], module: Any) -> dict[str, int]:
    """How many chord parts each release's workers ran (from their logs)."""
    out = {"old": 0, "new": 0}
    name = module.part.name
    for w in fleet:
        kind = "old" if w.code != ROOT else "new"
        out[kind] += w.log.read_text(errors="replace").count(f"Task {name}[")
    return out
