"""Canvas shapes as chords, natively counted and with chord_unlock, on real workers.

Each shape must give the same value both ways, with a prefork and a threads pool. The
count must match Celery's idea of the chord's size (``_chord._descend``: a chain counts as
its last task, a nested chord as its body, a nested group as its tasks), and the part that
fires must never block its pool process on a nested group's ``get()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import chain, chord, group, states

from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e]


def _shapes(m: Any) -> dict[str, tuple[Callable[[], Any], Any]]:
    return {
        "header_chains": (
            lambda: chord([chain(m.add.si(1, 1), m.add.s(10)), chain(m.add.si(2, 2), m.add.s(20))], m.tsum.s()),
            36,
        ),
        "nested_groups": (lambda: chord([group(m.add.si(1, 1), m.add.si(2, 2)), m.add.si(3, 3)], m.tsum.s()), 12),
        # Issue 17, case 7: a chain ending in a group inside a chain's group (a chord).
        "chain_ending_in_group": (
            lambda: chain(
                m.add.si(1, 0),
                group(m.add.si(1, 100), chain(m.add.si(1, 200), group(m.add.si(1, 1000), m.add.si(1, 2000)))),
                m.add.si(1, 10),
            ),
            11,
        ),
        "chain_ending_in_group_values": (
            lambda: chord([m.add.si(1, 1), chain(m.add.si(1, 2), group(m.add.si(1, 3), m.add.si(1, 4)))], m.nsum.s()),
            11,
        ),
        "chord_in_chord": (
            lambda: chord([chord([m.add.si(1, 1), m.add.si(2, 2)], m.tsum.s()), m.add.si(5, 5)], m.tsum.s()),
            16,
        ),
        "chord_in_chain": (
            lambda: chain(m.add.si(1, 1), chord([m.add.s(1), m.add.s(2)], m.tsum.s()), m.add.s(100)),
            107,
        ),
        "replaced_header_tasks": (lambda: chord([m.replaced.s(1), m.replaced.s(2)], m.tsum.s()), 23),
        "empty_header": (lambda: chord([], m.tsum.s()), 0),
        "chain_body": (lambda: chord([m.add.si(1, 1), m.add.si(2, 2)], chain(m.tsum.s(), m.add.s(100))), 106),
        "group_body": (lambda: chord([m.add.si(1, 1), m.add.si(2, 2)], group(m.tsum.s(), m.tsum.s())), [6, 6]),
        "chord_in_chain_in_chord": (
            lambda: chord(
                [chain(m.add.si(1, 1), chord([m.add.s(1), m.add.s(2)], m.tsum.s())), m.add.si(3, 3)], m.tsum.s()
            ),
            13,
        ),
    }


SHAPES = list(_shapes(type("M", (), {"__getattr__": lambda s, n: None})()))


@pytest.fixture(scope="module", params=["prefork", "threads"])
def pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["native", "unlock"])
def fleet(
    request: pytest.FixtureRequest, pool: str, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, bool]]:
    native = request.param == "native"
    url = moto_server.url(prefix=f"shapes-{pool}-{request.param}")
    if not native:
        url += "?conditional_writes=disabled"
    tmp = tmp_path_factory.mktemp(f"shapes-{pool}-{request.param}")
    # One slot: a part that fired and then blocked on a nested group's get() would hold the
    # only slot the group's last task could run in (issue 17, case 7), and hang.
    w = Worker(url, tmp, pool=pool, concurrency=1, name=f"s{pool}{request.param}")
    w.start()
    try:
        module = point_app_at(url, w.broker_dir)
        assert module.app.backend.native_chords is native
        yield module, w
    finally:
        w.stop()


@pytest.mark.parametrize("shape", SHAPES)
def test_shape(fleet: tuple[Any, Worker], shape: str) -> None:
    module, worker = fleet
    make, expected = _shapes(module)[shape]
    sig = make()
    try:
        res = sig.apply_async()
        assert res.get(timeout=60, interval=0.1) == expected
    except Exception:
        print(worker.tail())
        raise


def test_failing_header_task_fails_the_body(fleet: tuple[Any, Worker]) -> None:
    module, worker = fleet
    res = chord([module.add.si(1, 1), module.fail.si("boom")], module.tsum.s()).apply_async()
    with pytest.raises(Exception):  # noqa: B017 - which error wins is issue 17 case 8 (helper i14)
        res.get(timeout=60, interval=0.1)
    deadline = time.monotonic() + 60
    meta = module.app.backend.get_task_meta(res.id, cache=False)
    while meta["status"] not in states.READY_STATES and time.monotonic() < deadline:
        time.sleep(0.1)  # the header's error can reach the caller before the body's ChordError
        meta = module.app.backend.get_task_meta(res.id, cache=False)
    assert meta["status"] == "FAILURE", worker.tail()
    assert type(meta["result"]).__name__ == "ChordError", meta
    assert "boom" in str(meta["result"])


def _large_shapes(m: Any) -> dict[str, tuple[Callable[[], Any], Any]]:
    """Headers of 64+ parts (a native producer counts plain-task headers in a tree)."""
    n = 70
    return {
        "large_header_chains": (
            lambda: chord([chain(m.add.si(i, i), m.add.s(1)) for i in range(n)], m.tsum.s()),
            sum(2 * i + 1 for i in range(n)),
        ),
        "large_nested_groups": (
            lambda: chord(
                [group(m.add.si(i, 0) for i in range(n // 2))] + [m.add.si(i, 0) for i in range(n // 2, n)],
                m.nsum.s(),
            ),
            sum(range(n)),
        ),
        "large_chord_in_chord": (
            lambda: chord(
                [chord([m.add.si(1, 1), m.add.si(2, 2)], m.tsum.s())] + [m.add.si(i, 0) for i in range(n)], m.tsum.s()
            ),
            6 + sum(range(n)),
        ),
        "large_chain_ending_in_group": (
            lambda: chord(
                [m.add.si(i, 0) for i in range(n)] + [chain(m.add.si(1, 2), group(m.add.si(1, 3), m.add.si(1, 4)))],
                m.nsum.s(),
            ),
            sum(range(n)) + 9,
        ),
        "large_replaced_header_tasks": (
            lambda: chord([m.replaced.s(i) for i in range(n)], m.tsum.s()),
            sum(i + 10 for i in range(n)),
        ),
    }


LARGE_SHAPES = list(_large_shapes(type("M", (), {"__getattr__": lambda s, n: None})()))


@pytest.mark.parametrize("shape", LARGE_SHAPES)
def test_large_shape(fleet: tuple[Any, Worker], shape: str) -> None:
    """The shapes above at 64+ parts: a plain-task header counts in a tree, the others in the root."""
    module, worker = fleet
    if not module.app.backend.native_chords:
        pytest.skip("chord_unlock counts no tree: the small shapes above hold its values (CI time)")
    make, expected = _large_shapes(module)[shape]
    try:
        res = make().apply_async()
        assert res.get(timeout=120, interval=0.2) == expected
    except Exception:
        print(worker.tail())
        raise
