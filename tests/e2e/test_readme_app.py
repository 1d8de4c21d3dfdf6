"""The README's minimal app, as a new user runs it: a fresh venv, `s3result serve`, the app as written.

In a fresh venv, `pip install '.[testing]' 'celery[redis]'` (the package built from this checkout,
everything else from the package index, through pip's cache); `s3result serve` in one process (on
a free port: the app never names one, the endpoint comes from the exports serve prints); the
README's `tasks.py` copied as written, its broker aside (the Redis the tests start instead of
localhost:6379); then the README's commands: check, lifecycle --apply, a worker, add(2, 3).
The venv costs about a minute of CI, once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3result.testing.store import free_port
from tests.brokers import RedisServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README_BROKER = "redis://localhost:6379/0"
README_BACKEND = "s3result://my-bucket/celery"


def _readme_section() -> str:
    return (ROOT / "README.md").read_text().split("## A minimal app", 1)[1].split("\n## ", 1)[0]


def _readme_app() -> str:
    code = re.search(r"```python\n(.*?)```", _readme_section(), re.S)
    assert code, "the README's minimal app has no python block"
    return code.group(1)


def _clean_env() -> dict[str, str]:
    """The user's shell: none of the test run's AWS_*, S3RESULT_*, PYTHONPATH or coverage variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "S3RESULT_", "PYTHON", "COVERAGE_", "PYTEST_", "VIRTUAL_ENV"))
    }


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with `pip install '.[testing]' 'celery[redis]'`, the package built from a copy of the tree."""
    base = tmp_path_factory.mktemp("fresh")
    source = base / "s3result-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "s3result", source / "s3result", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{source}[testing]",
            "celery[redis]",
        ],
        cwd=base,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


@pytest.fixture
def served(fresh_venv: Path) -> Iterator[dict[str, str]]:
    """`s3result serve` from the fresh venv; yields the AWS_* lines it printed, as a user pastes them."""
    port = free_port()
    proc = subprocess.Popen(
        [str(fresh_venv / "bin" / "s3result"), "serve", "--port", str(port)],
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not banner.endswith("Ctrl-C stops it.\n"):
        line = proc.stdout.readline()
        if not line:
            break
        banner += line
    try:
        exports = dict(re.findall(r"^export (AWS_[A-Z0-9_]+)=(\S+)$", banner, re.M))
        assert len(exports) == 4 and f'result_backend = "{README_BACKEND}"' in banner, banner + proc.stderr.read()
        yield exports
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, err


def test_the_readme_minimal_app_runs_as_written_in_a_fresh_venv(
    fresh_venv: Path, served: dict[str, str], redis_broker: RedisServer, tmp_path: Path
) -> None:
    section, source = _readme_section(), _readme_app()
    # What the README tells the user to run, in order.
    for command in (
        "pip install 's3result[testing]' 'celery[redis]'",
        "s3result serve",
        "s3result check --app tasks",
        "s3result lifecycle --apply --app tasks",
        "celery -A tasks worker",
        "add.delay(2, 3).get(timeout=10) == 5",
    ):
        assert command in section, f"the README's minimal app no longer says {command!r}"
    assert source.count("\n") <= 12 and README_BROKER in source and README_BACKEND in source, source
    (tmp_path / "tasks.py").write_text(source.replace(README_BROKER, redis_broker.url(15)))
    bin_dir = fresh_venv / "bin"
    env = {**_clean_env(), **served, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    checked = run("s3result", "check", "--app", "tasks")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"endpoint: {served['AWS_ENDPOINT_URL_S3']}" in checked.stdout, checked.stdout
    applied = run("s3result", "lifecycle", "--apply", "--app", "tasks")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "s3://my-bucket/celery/ expires after 1 day" in applied.stdout, applied.stdout + applied.stderr
    assert "from result_expires (86400)" in applied.stderr, applied.stderr
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        ["celery", "-A", "tasks", "worker", "--loglevel", "WARNING"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        called = run("python", "-c", "from tasks import add; print(add.delay(2, 3).get(timeout=60))")
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
