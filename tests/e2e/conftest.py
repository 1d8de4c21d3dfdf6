"""A real Celery worker process (prefork, concurrency 2) on kombu's filesystem broker, or on a
real broker from tests/brokers.py (Redis, RabbitMQ, SQS), started once per session."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3result.testing.store import MotoServer
from tests.brokers import Broker, RabbitMQServer, RedisServer, SqsStack

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A `celery worker` subprocess; its log is kept for the failure report."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        name: str = "w1",
        broker_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        broker: Broker | None = None,
        namespace: int = 0,
        new_session: bool = False,
        code: Path | None = None,
    ) -> None:
        self.url = url
        #: The source tree the worker runs (``code_at``: an older commit's), by default this one.
        self.code = code or ROOT
        self.broker_dir = broker_dir or tmp / "broker"
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        (self.broker_dir / "processed").mkdir(exist_ok=True)
        self.log = tmp / f"worker-{name}.log"
        self.env = dict(
            os.environ,
            E2E_BACKEND_URL=url,
            PYTHONPATH=str(code or ROOT),
            **(extra_env or {}),
        )
        self.env["E2E_BROKER_DIR"] = str(self.broker_dir)
        if code is not None and code != ROOT:
            # An older commit's code is not what the coverage run measures (its files would count
            # against the floor as s3result modules at other paths).
            self.env.pop("COVERAGE_PROCESS_CONFIG", None)
            self.env.pop("COVERAGE_PROCESS_START", None)
        self.broker = broker
        self.namespace = namespace
        if broker is not None:
            self.env["E2E_BROKER_URL"] = broker.url(namespace)
            self.env["E2E_BROKER_OPTIONS"] = json.dumps(broker.transport_options(namespace))
            self.env["E2E_QUEUE"] = queue_for(namespace)
        #: In a session of its own, so a test may SIGKILL the worker's whole process group.
        self.new_session = new_session
        self.args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.e2e.app",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-l",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{name}@%h",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._logf = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.code,  # ``python -m`` puts the working directory first on sys.path
            env=self.env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}:\n{self.tail()}")
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker not ready after 60s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """An in-process worker (celery.contrib.testing's start_worker) sets the root logger to its own
    level (ERROR): later tests' caplog would then see no warning. Put the root logger back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture(scope="module")
def worker(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("worker")
    w = Worker(moto_server.url(prefix="e2e"), tmp)
    w.start()
    os.environ["E2E_BACKEND_URL"] = w.url
    os.environ["E2E_BROKER_DIR"] = str(w.broker_dir)
    yield w
    w.stop()


@pytest.fixture(scope="session")
def code_at(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """This repository's tree at a commit (``git archive``), for a ``Worker(code=...)`` that runs it.

    A rolling upgrade runs old and new code on one fleet; the old tree is the package, the
    tests' app and everything else at that commit, first on the worker's path. Skips (saying
    why) where the repository has no history, e.g. a shallow clone or an sdist.
    """
    trees: dict[str, Path] = {}

    def tree(commit: str) -> Path:
        if commit not in trees:
            known = subprocess.run(
                ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
            )
            if known.returncode != 0:
                pytest.skip(f"the repository has no commit {commit} (no git history here: a shallow clone?)")
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
            dest = tmp_path_factory.mktemp(f"code-{commit[:12]}")
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(dest, filter="data")
            trees[commit] = dest
        return trees[commit]

    return tree


def queue_for(namespace: int) -> str:
    """The queue of one set of workers on a real broker (RabbitMQ has no other namespace here)."""
    return f"e2e-{namespace}"


def point_app_at(url: str, broker_dir: Path, broker: Broker | None = None, namespace: int = 0) -> Any:
    """Point the client side of tests.e2e.app at a backend URL and broker folder (or real broker).

    Drops every cached backend, connection and producer pool, so nothing sent from here
    goes to a previous test's broker folder or reads a previous test's store.
    """
    from kombu import pools

    from tests.e2e import app as module

    app = module.app
    app.conf.result_backend = url
    if broker is not None:
        app.conf.broker_url = broker.url(namespace)
        app.conf.broker_transport = None
        app.conf.broker_transport_options = broker.transport_options(namespace)
        app.conf.task_default_queue = queue_for(namespace)
        app.__dict__.pop("amqp", None)  # its queues and router were built for the previous queue
    else:
        if app.conf.task_default_queue != "celery":
            app.conf.task_default_queue = "celery"
            app.__dict__.pop("amqp", None)
        app.conf.broker_url = "filesystem://"
        app.conf.broker_transport = "s3result.testing.fsbroker:Transport"
        app.conf.broker_transport_options = dict(
            store_processed=False,
            polling_interval=0.05,
            data_folder_in=str(broker_dir),
            data_folder_out=str(broker_dir),
            processed_folder=str(broker_dir / "processed"),
            control_folder=str(broker_dir / "control"),
        )
    app._local.__dict__.pop("backend", None)
    app._backend_cache = None
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None
    pools.reset()
    return module


def for_worker(w: Worker) -> Any:
    """The client side of tests.e2e.app, on the same broker and backend as worker ``w``."""
    return point_app_at(w.url, w.broker_dir, w.broker, w.namespace)


@pytest.fixture
def app(worker: Worker) -> Any:
    """The client side of the same app, pointed at the worker's broker and backend."""
    return point_app_at(worker.url, worker.broker_dir)


@pytest.fixture(scope="session")
def redis_broker() -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port; required: scripts/test installs it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_broker() -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node (and epmd) on loopback; slow to start, so once per session."""
    with RabbitMQServer() as server:
        print(f"rabbitmq-server ready in {server.start_seconds:.1f}s")
        yield server


@pytest.fixture(scope="session")
def sqs_stack() -> Iterator[SqsStack]:
    """SQS and S3 on one moto server, one IAM user with the all-AWS policy of docs/deployment.md."""
    with SqsStack() as stack:
        yield stack
