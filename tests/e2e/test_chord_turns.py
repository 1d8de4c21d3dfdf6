"""Small chords in turn (s3result/chords/turns.py) with real workers: a pool process killed while a
part waits its turn. The wait comes before the part's result is stored, so the kill is one Celery
handles (the part is reported lost, the chord ends); a wait after the store left the chord PENDING
for good, since Celery acknowledges a part whose SUCCESS was stored before its process was lost.

The worker has a pool process per part; tests/e2e/app.py (E2E_KILL_IN_TURN) makes every thread take
turns and SIGKILLs the process of part 9 as it starts to wait (4 turns: its leaf completes last).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery import chord, states
from celery.result import AsyncResult

from s3result.chords.geometry import Geometry
from s3result.chords.turns import turns_ahead
from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARTS = 10
LAST = PARTS - 1


def _wait_ready(res: AsyncResult, seconds: float) -> str:
    """The body's state once it ends, or its state after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and res.state not in states.READY_STATES:
        time.sleep(0.3)
    return str(res.state)


def test_a_part_killed_while_it_waits_its_turn_ends_the_chord(moto_server: MotoServer, tmp_path: Path) -> None:
    """Part 9's process is SIGKILLed as it starts its wait. Celery reports the part lost
    (WorkerLostError) and the chord ends with a ChordError on its body; it never stays PENDING."""
    assert turns_ahead(Geometry.fit(PARTS), LAST) == 4
    marker = tmp_path / "killed"
    url = moto_server.url(prefix="turns")
    env = {"E2E_KILL_MARKER": str(marker), "E2E_KILL_IN_TURN": str(LAST)}
    w = Worker(url, tmp_path, pool="prefork", concurrency=PARTS, extra_env=env)
    w.start()
    try:
        module = point_app_at(url, w.broker_dir)
        res = chord(module.part.s(i) for i in range(PARTS))(module.tsum.s())
        state = _wait_ready(res, 60)
        assert marker.exists(), f"part {LAST} did not wait its turn\n{w.tail()}"
        header = [AsyncResult(r.id, app=module.app).state for r in res.parent.results]
        assert state in states.READY_STATES, f"the body is {state} (header states: {header})\n{w.tail()}"
        # Killed in its wait: its result was never stored, so Celery stored the loss.
        assert header[LAST] == states.FAILURE and state == states.FAILURE, (header, state, w.tail())
    finally:
        w.stop()
