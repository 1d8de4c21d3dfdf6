"""End to end on a directory bucket (S3 Express One Zone): a real prefork worker and a caller,
both through the testing kit's directory-bucket front (s3result/testing/express.py) with
sessions shortened to 6 s, so that both sides renew theirs several times during the test.
Integration: tests/integration/test_express.py; unit: tests/test_express.py.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from celery import chord

from s3result.testing.express import DirectoryBucketFront
from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e]


def _rejected(front: DirectoryBucketFront) -> dict[str, int]:
    return {k: v for k, v in front.stats.items() if k.startswith("rejected")}


def test_worker_and_caller_on_a_directory_bucket(moto_server: MotoServer, tmp_path: Path) -> None:
    with DirectoryBucketFront(moto_server, session_ttl=6.0) as front:
        url = front.url(f"e2e-express-{uuid.uuid4().hex[:8]}")
        calls = tmp_path / "calls"
        calls.mkdir()
        worker = Worker(url, tmp_path, extra_env={"E2E_CALLS_DIR": str(calls)})
        worker.start()
        module = point_app_at(url, worker.broker_dir)
        try:
            backend = module.app.backend
            assert backend.settings.express
            # Results stored by the worker's processes and read by this one, over ~3 session lives.
            deadline = time.monotonic() + 14
            n = 0
            while time.monotonic() < deadline:
                assert module.add.delay(n, 1).get(timeout=30, interval=0.05) == n + 1
                n += 1
            assert n > 10
            assert front.stats["sessions"] >= 4, front.stats
            assert _rejected(front) == {}, front.stats  # renewed ahead of expiry: not one request refused
            # A chord counted natively: compare-and-swap (If-Match) through the front.
            assert backend.native_chords
            before = front.stats["if-match"]
            marker = f"express-{uuid.uuid4().hex[:8]}"
            res = chord(module.part.s(i) for i in range(20))(module.collect.s(marker))
            assert res.get(timeout=60, interval=0.05) == sum(range(20))
            time.sleep(0.3)
            assert len(list(calls.glob(f"{marker}.*"))) == 1
            assert front.stats["if-match"] > before
            assert _rejected(front) == {}, front.stats
            # A session refused once (revoked early): renewed, the request sent again, no error.
            front.refuse(1)
            assert module.add.delay(2, 3).get(timeout=30, interval=0.05) == 5
            assert front.stats["refused"] == 1
            assert _rejected(front) == {"rejected ExpiredToken": 1}, front.stats
        except Exception:
            print(worker.tail())
            raise
        finally:
            worker.stop()
            module.app.backend.client.close()
