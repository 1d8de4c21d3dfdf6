"""Waiting on real workers: a failed chord header's own error wins, with native chords as with
chord_unlock (issue 17, case 8), and a worker whose bucket is missing refuses to start (issue 14).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import chain, chord, group

from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module", params=["native", "chord_unlock"])
def chord_worker(
    request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Worker]]:
    mode = request.param
    writes = "etag" if mode == "native" else "disabled"
    tmp = tmp_path_factory.mktemp(f"waits-{mode}")
    worker = Worker(
        moto_server.url(prefix=f"waits-{mode}") + f"?conditional_writes={writes}", tmp, pool="threads", concurrency=4
    )
    worker.start()
    yield mode, worker
    worker.stop()


def _bodies(module: Any) -> dict[str, Any]:
    return {
        "single": module.echo.s(),
        "chain": chain(module.echo.s(), module.echo.s()),
    }


@pytest.mark.parametrize("body", ["single", "chain"])
def test_a_failed_header_raises_its_own_error(chord_worker: tuple[str, Worker], body: str) -> None:
    mode, worker = chord_worker
    module = point_app_at(worker.url, worker.broker_dir)
    assert module.app.backend.native_chords is (mode == "native")
    header = chain(module.echo.si(42), module.fail.s(), module.echo.si(42))
    res = chord((header,), _bodies(module)[body]).delay()
    with pytest.raises(module.Boom) as exc:
        res.get(timeout=60)
    assert str(exc.value) == "42", worker.tail()


def test_a_group_body_fails_as_with_chord_unlock(chord_worker: tuple[str, Worker]) -> None:
    # GroupResult.get() follows no parents in Celery: the body's own error, in both modes.
    mode, worker = chord_worker
    module = point_app_at(worker.url, worker.broker_dir)
    header = chain(module.echo.si(42), module.fail.s(), module.echo.si(42))
    res = chord((header,), group(module.echo.s(), module.echo.s())).delay()
    with pytest.raises(Exception) as exc:
        res.get(timeout=60)
    assert type(exc.value).__name__ in ("ChordError", "Boom"), repr(exc.value)
    assert "42" in str(exc.value) or "Boom" in str(exc.value), repr(exc.value)


def test_a_worker_whose_bucket_is_missing_refuses_to_start(moto_server: MotoServer, tmp_path: Path) -> None:
    url = moto_server.url("w").replace(f"/{moto_server.bucket}/", "/no-such-bucket-i14/", 1)
    worker = Worker(url, tmp_path, pool="solo", concurrency=1)
    try:
        with pytest.raises(RuntimeError, match="exited with 1"):
            worker.start()
        log = worker.tail()
    finally:
        worker.stop()
    lines = [line for line in log.splitlines() if "worker not started" in line]
    assert len(lines) == 1, log
    assert "NoSuchBucket" in lines[0] and "'no-such-bucket-i14' does not exist" in lines[0], lines[0]
    assert moto_server.secret_key not in log
    assert " ready." not in log
