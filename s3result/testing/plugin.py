"""pytest fixtures for testing Celery apps against a real local S3 store.

Registered under pytest's ``pytest11`` entry point, so it loads by itself wherever s3result
is installed, and costs nothing for tests that do not ask for its fixtures: importing this
module imports neither moto nor Celery nor httpx, it adds no command-line option and no hook,
and a store starts only when a test first requests one. The fixture names all start with ``s3result_``; a fixture of the same name in a user's conftest wins, as pytest always does.
Turn it off with ``-p no:s3result``.

It loads once however it is named: the entry point (``s3result``, which points here through
``s3result.testing.entry``), ``-p s3result``, ``-p s3result.testing.plugin`` or
``pytest_plugins = ["s3result.testing.plugin"]`` in a conftest, in any combination: this module
is always registered under its own name, and pytest registers a name once.

- ``s3result_store`` (session): a ``MotoServer`` on 127.0.0.1 with SigV4 auth on and atomic
  conditional writes, bucket ``s3result-tests``; started on first use, stopped at the end.
- ``s3result_backend_url`` (per test): a ``result_backend`` URL into that store under a fresh
  prefix, so tests never see each other's results.

Needs the ``testing`` extra: ``pip install 's3result[testing]'`` (moto's server).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .store import MotoServer

__all__ = ["s3result_backend_url", "s3result_store"]

#: The bucket every test's prefix lives in.
BUCKET = "s3result-tests"


@pytest.fixture(scope="session")
def s3result_store() -> Iterator[MotoServer]:
    """A local S3 store (moto server, auth on, atomic conditional writes) for the whole session."""
    import importlib.util

    if importlib.util.find_spec("moto") is None:  # pragma: no cover - the test extras always have moto
        pytest.fail("the s3result_store fixture needs moto's server: pip install 's3result[testing]'", pytrace=False)
    missing = ""
    try:  # moto alone (for its decorators) lacks the server's web stack: say so, not "did not start"
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing = str(exc)
    if missing:
        pytest.fail(
            f"the s3result_store fixture needs moto's server ({missing}): pip install 's3result[testing]'",
            pytrace=False,
        )
    from .store import MotoServer

    with MotoServer(bucket=BUCKET) as store:
        yield store


@pytest.fixture
def s3result_backend_url(s3result_store: MotoServer) -> str:
    """A ``result_backend`` URL into the session's store, under a prefix of this test's own.

    The secret is percent-encoded, as it should be in any URL Celery shows (a raw '/' defeats its
    masking, and the worker warns of it).
    """
    from urllib.parse import quote

    url = s3result_store.url(prefix=f"t-{uuid.uuid4().hex[:16]}")
    secret = s3result_store.secret_key
    return url.replace(f":{secret}@", f":{quote(secret, safe='')}@", 1)
