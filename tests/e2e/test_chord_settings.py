"""Producer and workers with different ``conditional_writes`` settings (issue 17, case 3).

The producer decides once and the chord carries the decision; so every mix either completes
exactly once (natively or through chord_unlock) or ends with the body FAILURE and a
ChordError naming the setting: never PENDING, never twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import chord, states

from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e]

SETTINGS = ("disabled", "probe", "etag")


@pytest.fixture(scope="module", params=SETTINGS)
def worker_setting(
    request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Worker, Path]]:
    setting = str(request.param)
    tmp = tmp_path_factory.mktemp(f"settings-{setting}")
    calls = tmp / "calls"
    calls.mkdir()
    url = moto_server.url(prefix="settings") + f"?conditional_writes={setting}"
    w = Worker(url, tmp, pool="threads", concurrency=4, name=f"cw{setting}", extra_env={"E2E_CALLS_DIR": str(calls)})
    w.start()
    try:
        yield setting, w, calls
    finally:
        w.stop()


@pytest.mark.parametrize("producer_setting", SETTINGS)
def test_mixed_settings(
    worker_setting: tuple[str, Worker, Path], producer_setting: str, moto_server: MotoServer
) -> None:
    setting, worker, calls = worker_setting
    url = moto_server.url(prefix="settings") + f"?conditional_writes={producer_setting}"
    module: Any = point_app_at(url, worker.broker_dir)
    marker = f"{producer_setting}-{setting}-{uuid.uuid4().hex[:8]}"
    res = chord(module.part.s(i) for i in range(10))(module.collect.s(marker))
    deadline = time.monotonic() + 60
    meta = module.app.backend.get_task_meta(res.id, cache=False)
    while meta["status"] not in states.READY_STATES and time.monotonic() < deadline:
        time.sleep(0.1)
        meta = module.app.backend.get_task_meta(res.id, cache=False)
    time.sleep(0.5)  # room for a second (wrong) firing to show up
    runs = list(calls.glob(f"{marker}.*"))
    if producer_setting != "disabled" and setting == "disabled":
        assert meta["status"] == states.FAILURE, worker.tail()
        assert "conditional_writes" in str(meta["result"]), meta
        assert runs == []
    else:
        assert meta["status"] == states.SUCCESS, (meta, worker.tail())
        assert meta["result"] == sum(range(10))
        assert len(runs) == 1, f"body ran {len(runs)} times"
