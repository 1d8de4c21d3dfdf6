"""Run every check against one store and judge each answer: pass, differs or fail.

Everything a run writes lives under ``<prefix>/s3result-conformance/<run id>/`` and is deleted
at the end (best effort: a store that refuses DELETE keeps it, and the report says so).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import S3ResultError
from ..s3.client import S3Client
from .checks import CHECKS, EXPECTED, Ctx
from .verdicts import MEANINGS

if TYPE_CHECKING:
    from ..results.settings import Settings

__all__ = ["Outcome", "PreflightError", "run_checks"]


@dataclass(frozen=True)
class Outcome:
    """One check's answer and what it means for s3result."""

    check: str
    semantic: str
    verdict: str  # "pass", "differs" or "fail"
    observed: str
    expected: str
    meaning: str
    ms: float


class PreflightError(S3ResultError):
    """The store cannot even take one PUT, GET and DELETE: no check would mean anything."""


class _Recording(S3Client):
    """The run's client: remembers every key it writes, so the run can delete them all."""

    written: set[str]

    def put(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.written.add(key)
        return super().put(key, *args, **kwargs)

    def send_raw(self, method: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PUT":
            self.written.add(key)
        return super().send_raw(method, key, *args, **kwargs)


def _preflight(client: S3Client, key: str) -> None:
    try:
        client.put(key, b"preflight")
        if client.get(key).body != b"preflight":
            raise PreflightError(f"preflight: {key!r} read back other bytes than were written")
        client.delete(key)
    except S3ResultError as exc:
        raise PreflightError(f"no check run: one object could not be written, read and deleted: {exc}") from exc


def _judge(name: str, observed: Any, ms: float) -> Outcome:
    meaning = MEANINGS[name]
    expected = EXPECTED[name]
    if observed == expected:
        verdict = "pass"
    else:
        verdict = "fail" if meaning.fails(observed) else "differs"
    return Outcome(name, meaning.semantic, verdict, str(observed), str(expected), meaning.meaning(observed), ms)


def run_checks(
    settings: Settings, *, only: list[str] | None = None, client: S3Client | None = None
) -> Iterator[Outcome]:
    """Yield one ``Outcome`` per check, in order, as each ends; clean up after the last one."""
    base = client or _Recording(settings.s3)
    recording = isinstance(base, _Recording)
    if recording:
        base.written = set()  # type: ignore[attr-defined]
    run = f"{settings.prefix.strip('/') + '/' if settings.prefix.strip('/') else ''}s3result-conformance"
    run = f"{run}/{uuid.uuid4().hex[:8]}"
    try:
        _preflight(base, f"{run}/preflight")
        for name in only or list(CHECKS):
            started = time.perf_counter()
            try:
                observed: Any = CHECKS[name](Ctx(client=base, prefix=f"{run}/{name}"))
            except Exception as exc:  # noqa: BLE001 - a check that raises is an answer, judged like any
                observed = f"raised {type(exc).__name__}: {exc}"
            yield _judge(name, observed, (time.perf_counter() - started) * 1000)
    finally:
        if recording:
            _clean_up(base)


def _clean_up(client: S3Client) -> None:
    for key in sorted(getattr(client, "written", ())):
        try:
            client.delete(key)
        except Exception:  # noqa: BLE001 - best effort: a leading-slash key, a store refusing DELETE
            pass
    client.close()
