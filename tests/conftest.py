"""Shared fixtures: a clean environment, and real S3 servers started on 127.0.0.1.

A server that fails to start fails the tests that need it; nothing is skipped silently.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from s3result.testing.store import MotoServer

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# A proxy of the machine's would carry the tests' loopback traffic (s3result honours these).
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS_* or S3RESULT_* variable, nor ~/.aws file, of the developer's leaks into a test.

    Instance metadata is off: a test that finds no credentials must never send a packet to
    169.254.169.254. Tests of the IMDS provider point it at a local fake instead.
    """
    for name in list(os.environ):
        if name.startswith(("AWS_", "S3RESULT_")) or name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


@pytest.fixture(autouse=True)
def fresh_pacers() -> Iterator[None]:
    """Each test starts with every store's pacer off: throttling one test saw slows no other."""
    from s3result.s3 import limiter

    def reset_all() -> None:
        for store in limiter.LIMITERS.values().values():  # every store's pacers in this process
            store.reads.reset()
            store.writes.reset()

    reset_all()
    yield
    reset_all()


@pytest.fixture(scope="session")
def moto_server(s3result_store: MotoServer) -> MotoServer:
    """The testing kit's store (s3result.testing.plugin): moto server with auth on, an IAM user
    with s3:* and the bucket s3result-tests; stopped at the end of the session."""
    return s3result_store


@pytest.fixture(scope="session")
def boto3_client(moto_server: MotoServer) -> Any:
    """An independent S3 client (boto3, tests only) to check what s3result stored."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def nanio_target() -> Iterator[Any]:
    """nanio: checks signatures but ignores conditional writes."""
    from conformance.servers import nanio_target as launch

    with launch(bucket="s3result-tests") as target:
        yield target


@pytest.fixture(scope="session")
def ceph_target() -> Iterator[Any]:
    """Ceph RGW 16.2 (mon + memstore OSD + radosgw); required: CI installs the Debian packages."""
    from conformance.servers import ceph_target as launch

    with launch(bucket="s3result-tests") as target:
        yield target


@pytest.fixture
def silent_port(silent_counted: tuple[int, list[socket.socket]]) -> int:
    """A store that accepts connections and never answers a byte (the port it listens on)."""
    return silent_counted[0]


@pytest.fixture
def silent_counted() -> Iterator[tuple[int, list[socket.socket]]]:
    """A store that accepts and never answers, with the connections it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield int(server.getsockname()[1]), held
    server.close()
    for conn in held:
        conn.close()
