"""The README's minimal app, copied as a user would, runs: check, lifecycle --apply, a worker, a result.

Only its two addresses change: the broker becomes the Redis the tests start, and the result
backend the moto server (the README's `s3result://my-bucket/celery?region=eu-west-1`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from s3result.testing.store import MotoServer
from tests.brokers import RedisServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README_BROKER = "redis://localhost:6379/0"
README_BACKEND = "s3result://my-bucket/celery?region=eu-west-1"


def _readme_app() -> str:
    section = (ROOT / "README.md").read_text().split("## A minimal app", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the README's minimal app has no python block"
    return code.group(1)


def test_the_readme_minimal_app_runs_as_written(
    moto_server: MotoServer, redis_broker: RedisServer, tmp_path: Path
) -> None:
    source = _readme_app()
    assert source.count("\n") <= 12 and README_BROKER in source and README_BACKEND in source, source
    (tmp_path / "tasks.py").write_text(
        source.replace(README_BROKER, redis_broker.url(15)).replace(README_BACKEND, moto_server.url("celery"))
    )
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PYTHONPATH=str(tmp_path))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    checked = run(str(bin_dir / "s3result"), "check", "--app", "tasks")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    applied = run(str(bin_dir / "s3result"), "lifecycle", "--apply", "--app", "tasks")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "s3://s3result-tests/celery/ expires after 1 day" in applied.stdout, applied.stdout + applied.stderr
    assert "from result_expires (86400)" in applied.stderr, applied.stderr
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "WARNING"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        called = run(sys.executable, "-c", "from tasks import add; print(add.delay(2, 3).get(timeout=60))")
        assert called.returncode == 0 and called.stdout.strip() == "5", (
            called.stdout + called.stderr + (tmp_path / "worker.log").read_text()[-2000:]
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
