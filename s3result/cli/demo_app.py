"""The Celery app that ``s3result demo`` runs in a real worker process.

Configured from the environment by the demo: S3RESULT_DEMO_BACKEND (the result-backend URL
of the embedded store) and S3RESULT_DEMO_BROKER (a folder for kombu's filesystem broker).
"""

from __future__ import annotations

import os

from celery import Celery

_broker = os.environ.get("S3RESULT_DEMO_BROKER", "/tmp/s3result-demo-broker")

app = Celery("s3result_demo")
app.conf.update(
    broker_url="filesystem://",
    # kombu's filesystem transport, with atomic writes (see s3result.testing.fsbroker): no broker server.
    broker_transport="s3result.testing.fsbroker:Transport",
    broker_transport_options={
        "data_folder_in": _broker,
        "data_folder_out": _broker,
        "processed_folder": _broker,
        "store_processed": False,
        "polling_interval": 0.05,
    },
    result_backend=os.environ.get("S3RESULT_DEMO_BACKEND", "s3result://unconfigured-demo-bucket"),
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)


class DemoError(RuntimeError):
    """What the failing demo task raises: its type and message survive the round trip."""


@app.task
def add(x: int, y: int) -> int:
    """The classic."""
    return x + y


@app.task
def fail(message: str) -> None:
    """Always fails, to show a stored FAILURE."""
    raise DemoError(message)


@app.task
def tsum(values: list[int]) -> int:
    """A chord body."""
    return sum(values)
