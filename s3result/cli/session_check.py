"""``check`` on a directory bucket (S3 Express One Zone): the session layer, before any object request.

Every object request there is signed with a session's credentials, so a CreateSession that
fails fails everything after it: it is probed first and told apart from the rest (the IAM
action it needs is ``s3express:CreateSession``, not ``s3:GetObject``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import S3Error, TransportError
from .findings import Finding, diagnose_transport

if TYPE_CHECKING:
    from ..results.config import Settings
    from ..s3.client import S3Client

__all__ = ["session_findings"]


def session_findings(client: S3Client, settings: Settings) -> Iterator[Finding]:
    """One CreateSession: the session's mode and life, or why there is none and the fix."""
    from ..s3.express import SessionProvider, refresh_windows

    source = client.session
    if source is None:
        return
    started = time.perf_counter()
    try:
        source.get()
    except TransportError as exc:
        detail, fix = diagnose_transport(exc, client)
        yield Finding("session", False, detail, fix, ms=(time.perf_counter() - started) * 1000)
        return
    except S3Error as exc:
        ms = (time.perf_counter() - started) * 1000
        fix = exc.hint or "check the credentials and the bucket name"
        yield Finding("session", False, f"CreateSession on {settings.bucket} failed: {exc}", fix, ms=ms)
        return
    except Exception as exc:  # noqa: BLE001 - reported, as every other probe's failure
        yield Finding("session", False, f"CreateSession on {settings.bucket} failed: {exc}", "check the bucket")
        return
    ms = (time.perf_counter() - started) * 1000
    provider = source.providers[0] if source.providers else None
    lifetime = provider.lifetime if isinstance(provider, SessionProvider) else 300.0
    advisory, mandatory = refresh_windows(lifetime)
    mode = settings.session_mode or "ReadWrite, else ReadOnly (S3 decides)"
    yield Finding(
        "session",
        True,
        f"CreateSession on {settings.bucket}: {mode} session of {lifetime:.0f}s, renewed from {advisory:.0f}s "
        f"before it ends (every caller waits from {mandatory:.0f}s); object requests signed with it (s3express)",
        ms=ms,
    )
