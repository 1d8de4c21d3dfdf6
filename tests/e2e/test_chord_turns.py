"""Small chords in turn (s3result/chords/turns.py) under the faults that strike while a part waits.

A part of a chord of up to 64 plain parts waits for its turn before its result's PUT. These tests
stop a part in that wait: its pool process SIGKILLed, its soft time limit raised. The worker has a
process per part (10), each warmed up by earlier tasks (a process that stored no result yet does not
wait), and every request goes through a relay that answers after 40 ms, so a turn is the longest
one (0.12 s) and part 9 of 10, whose leaf completes last, waits 4 turns (about 0.5 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import chord, group, states
from celery.result import AsyncResult

from s3result.chords.geometry import Geometry
from s3result.chords.turns import MAX_TURN_S, turns_ahead
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARTS = 10
LAST = PARTS - 1


@pytest.fixture
def slow_store(moto_server: MotoServer) -> Iterator[str]:
    """A URL of moto behind a relay that answers each request 40 ms late (for the workers)."""
    proxy = FaultProxy(moto_server.host, moto_server.port, latency=0.04)
    proxy.set_faults(latency=1.0)
    try:
        yield moto_server.url(prefix="turns").replace(f":{moto_server.port}/", f":{proxy.port}/")
    finally:
        proxy.close()


def _warm_worker(moto: MotoServer, url: str, tmp_path: Path, **env: str) -> tuple[Worker, Any]:
    """A worker of a pool process per part, on ``url``; the app (producer, caller) straight on moto."""
    w = Worker(url, tmp_path, pool="prefork", concurrency=PARTS, extra_env=env)
    w.start()
    module = point_app_at(moto.url(prefix="turns"), w.broker_dir)
    # Every pool process stores results before the chord: its PUTs set its turn.
    group(module.sleepy.s(0.05) for _ in range(8 * PARTS))().get(timeout=120, interval=0.1)
    return w, module


def _wait_ready(res: AsyncResult, seconds: float) -> str:
    """The body's state once it ends, or its state after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if res.state in states.READY_STATES:
            break
        time.sleep(0.3)
    return str(res.state)


def test_the_last_part_of_a_ten_part_chord_waits_four_turns() -> None:
    """The arithmetic the tests below rely on."""
    assert turns_ahead(Geometry.fit(PARTS), LAST) == 4 and 4 * MAX_TURN_S > 0.4


def test_a_part_killed_while_it_waits_its_turn_ends_the_chord(
    moto_server: MotoServer, slow_store: str, tmp_path: Path
) -> None:
    """Part 9 has its pool process SIGKILLed 0.25 s after it returned, in its wait of ~0.5 s and
    before its result is stored. Celery reports the part lost (WorkerLostError) and the chord ends
    with a ChordError on its body; it never stays PENDING. (A wait after the part's SUCCESS was
    stored left the chord PENDING for good: Celery acknowledges such a part and nobody counts it.)"""
    marker = tmp_path / "killed"
    w, module = _warm_worker(moto_server, slow_store, tmp_path, E2E_KILL_MARKER=str(marker))
    try:
        res = chord(module.part_lost_later.s(i, LAST, 0.25) for i in range(PARTS))(module.tsum.s())
        state = _wait_ready(res, 60)
        assert marker.exists(), "the part was not killed"
        header = [AsyncResult(r.id, app=module.app).state for r in res.parent.results]
        assert state in states.READY_STATES, f"the body is {state} (header states: {header})\n{w.tail()}"
        # Killed in its wait: its result was never stored, so Celery stored the loss.
        assert header[LAST] == states.FAILURE and state == states.FAILURE, (header, state, w.tail())
    finally:
        w.stop()


def test_a_soft_time_limit_during_a_part_s_turn_does_not_fail_the_chord(
    moto_server: MotoServer, slow_store: str, tmp_path: Path
) -> None:
    """Each part takes 0.3 s; part 9, with a soft time limit of 0.45 s, then waits ~0.5 s for its
    turn, and the limit strikes during that wait. The part's work is done: it is stored and
    counted, and the body runs with every result (no ChordError for a wait of ours)."""
    w, module = _warm_worker(moto_server, slow_store, tmp_path)
    try:
        header = [module.slow_part.s(i, 0.3) for i in range(LAST)]
        header.append(module.slow_part.s(LAST, 0.3).set(soft_time_limit=0.45))
        res = chord(header)(module.tsum.s())
        try:
            assert res.get(timeout=90, interval=0.2) == sum(range(PARTS))
        except Exception:
            print(w.tail(6000))
            raise
        assert "Soft time limit (0.45s) exceeded" in w.log.read_text(errors="replace"), w.tail(6000)
    finally:
        w.stop()
