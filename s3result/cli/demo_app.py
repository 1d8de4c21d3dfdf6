"""The Celery app that ``s3result demo`` runs in a real worker process.

Configured from the environment by the demo: S3RESULT_DEMO_BACKEND (the result-backend URL
of the embedded store) and S3RESULT_DEMO_BROKER (a folder for kombu's filesystem broker,
which the demo creates private to the user). Nothing is built at import: ``app`` and the
tasks come into being on first access, and without the demo's folder that access fails
with a message saying so. A shared default folder (say under /tmp) would let any local
user read the demo's messages or inject tasks into its worker.
"""

from __future__ import annotations

import os
import stat
from typing import Any

__all__ = ["DemoError", "build"]

_BUILT = ("add", "app", "fail", "tsum")


class DemoError(RuntimeError):
    """What the failing demo task raises: its type and message survive the round trip."""


def _broker_folder() -> str:
    folder = os.environ.get("S3RESULT_DEMO_BROKER", "")
    if not folder:
        raise RuntimeError(
            "s3result.cli.demo_app is the app of `s3result demo`, which sets S3RESULT_DEMO_BROKER to a private "
            "temporary folder: run `s3result demo` instead of loading this app directly"
        )
    try:
        info = os.stat(folder)
    except OSError as exc:
        raise RuntimeError(f"S3RESULT_DEMO_BROKER={folder!r}: {exc.strerror}; run `s3result demo`") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(
            f"S3RESULT_DEMO_BROKER={folder!r} must be a folder of this user that no one else can write to "
            "(the demo makes one with tempfile.mkdtemp); run `s3result demo`"
        )
    return folder


def build() -> Any:
    """Make the demo's app and tasks from the environment, once."""
    if "app" in globals():
        return globals()["app"]
    from celery import Celery

    from ..testing.fsbroker import folder_options

    broker = _broker_folder()
    app = Celery("s3result_demo")
    app.conf.update(
        broker_url="filesystem://",
        # kombu's filesystem transport, with atomic writes (see s3result.testing.fsbroker): no broker server.
        broker_transport="s3result.testing.fsbroker:Transport",
        broker_transport_options=folder_options(broker),
        result_backend=os.environ.get("S3RESULT_DEMO_BACKEND", "s3result://unconfigured-demo-bucket"),
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
    )

    @app.task(name="s3result.cli.demo_app.add")
    def add(x: int, y: int) -> int:
        """The classic."""
        return x + y

    @app.task(name="s3result.cli.demo_app.fail")
    def fail(message: str) -> None:
        """Always fails, to show a stored FAILURE."""
        raise DemoError(message)

    @app.task(name="s3result.cli.demo_app.tsum")
    def tsum(values: list[int]) -> int:
        """A chord body."""
        return sum(values)

    globals().update(app=app, add=add, fail=fail, tsum=tsum)
    return app


def __getattr__(name: str) -> Any:
    # PEP 562: `celery -A s3result.cli.demo_app` and the demo reach `app` (and the tasks)
    # through here, so importing the module alone builds nothing.
    if name in _BUILT:
        build()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
