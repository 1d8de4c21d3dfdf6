"""``s3result check``: the resolved configuration, then live probes, each with a fix.

It reads the same settings a worker would, shows where the credentials came from (never the
secret), and tries what a worker does: PUT, GET, HEAD and DELETE of a probe key, a GET of a
missing key (403 there means s3:ListBucket is missing), conditional writes, the clock and
the region. Exit status 0 when all is well, 1 otherwise.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TextIO

from ..client import S3Client
from ..errors import S3Error, S3ResultError, TransportError
from ..precondition import probe

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Finding", "run_check"]


@dataclass
class Finding:
    """One probe: its name, whether it passed, what was seen, the fix, and its latency."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    ms: float | None = None
    warning: bool = False


def _arn(settings: Settings, objects: bool) -> str:
    if not objects:
        return f"arn:aws:s3:::{settings.bucket}"
    return f"arn:aws:s3:::{settings.bucket}/{settings.prefix + '/' if settings.prefix else ''}*"


def _timed(fn: Any) -> tuple[Any, float, BaseException | None]:
    start = time.perf_counter()
    try:
        value = fn()
        error = None
    except S3ResultError as exc:
        value, error = None, exc
    return value, (time.perf_counter() - start) * 1000, error


def _iam_fix(settings: Settings, action: str, objects: bool = True) -> str:
    return f'grant "{action}" on "{_arn(settings, objects)}" to these credentials'


def _endpoint_fix(error: TransportError) -> str:
    """The transport error's own advice: a store that does not answer is never a missing grant."""
    text = str(error)
    cut = max(text.rfind("); "), text.rfind("): "))
    return text[cut + 3 :] if cut >= 0 else "check endpoint_url and that the store is running"


def findings_for(settings: Settings, app: Any = None) -> tuple[dict[str, Any], list[Finding]]:
    """Everything ``check`` reports, as data."""
    client = S3Client(settings)
    creds_source = ""
    found: list[Finding] = []
    try:
        creds = client._credentials.get()
        creds_source = f"{creds.source} (access key {creds.access_key})"
    except S3ResultError as exc:
        found.append(Finding("credentials", False, str(exc), "configure credentials (see the README's table)"))
    resolved = {
        "endpoint": client._base,
        "bucket": settings.bucket,
        "prefix": settings.prefix,
        "region": settings.region,
        "addressing": "path-style" if settings.path_style else "virtual-hosted",
        "credentials": creds_source or "none found",
        "conditional_writes": str(settings.conditional_writes),
    }
    if not creds_source:
        return resolved, found
    key = settings.object_key(f"s3result-check/{uuid.uuid4().hex}")
    missing = settings.object_key(f"s3result-check/missing-{uuid.uuid4().hex}")
    steps: list[tuple[str, Any, str]] = [
        ("PUT", lambda: client.put(key, b"s3result check"), _iam_fix(settings, "s3:PutObject")),
        ("GET", lambda: client.get(key), _iam_fix(settings, "s3:GetObject")),
        ("HEAD", lambda: client.head(key), _iam_fix(settings, "s3:GetObject")),
        ("GET missing key", lambda: client.get_or_none(missing), _iam_fix(settings, "s3:ListBucket", objects=False)),
        ("DELETE", lambda: client.delete(key), _iam_fix(settings, "s3:DeleteObject")),
    ]
    put_failed = False
    for name, call, fix in steps:
        if put_failed and name in ("GET", "HEAD"):
            found.append(
                Finding(name, False, "skipped: the PUT failed, so there is no object to read", "fix the PUT first")
            )
            continue
        _, ms, error = _timed(call)
        put_failed = put_failed or (name == "PUT" and error is not None)
        if error is None:
            found.append(Finding(name, True, "ok", ms=ms))
        else:
            hint = fix
            if isinstance(error, S3Error) and error.code in (
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "NoSuchBucket",
            ):
                hint = str(error).split("(", 1)[-1].rstrip(")").split(") [")[0]
            if isinstance(error, TransportError):
                hint = _endpoint_fix(error)
            found.append(Finding(name, False, str(error), hint, ms=ms))
            if name == "PUT" and isinstance(error, TransportError):
                return resolved, found  # the other probes would meet the same endpoint
            if (
                name == "PUT"
                and isinstance(error, S3Error)
                and error.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket")
            ):
                return resolved, found
    if all(f.ok for f in found):
        verdict, ms, error = _timed(lambda: probe(client, settings.prefix))
        if error is not None:
            found.append(Finding("conditional writes", False, str(error), "see the error above", ms=ms))
        elif verdict.ok:
            found.append(Finding("conditional writes", True, "supported: one request per write, native chords", ms=ms))
        else:
            found.append(
                Finding(
                    "conditional writes",
                    True,
                    f"not usable ({verdict.reason}): read-then-write and chord_unlock are used",
                    "nothing to do; conditional_writes=disabled skips this probe",
                    ms=ms,
                    warning=True,
                )
            )
    found += _clock_and_region(client, settings, missing)
    expires = getattr(getattr(app, "conf", None), "result_expires", None) if app is not None else None
    if expires:
        found.append(
            Finding(
                "result expiry",
                True,
                f"result_expires is set ({expires}) but S3 cannot expire single objects",
                "apply a lifecycle rule: s3result lifecycle --days N",
                warning=True,
            )
        )
    return resolved, found


def _clock_and_region(client: S3Client, settings: Settings, missing: str) -> list[Finding]:
    out: list[Finding] = []
    try:
        resp = client.send_raw("HEAD", missing)
    except S3ResultError as exc:
        return [Finding("clock", False, f"no answer to compare clocks: {exc}", "check the endpoint")]
    date = resp.headers.get("date")
    if date:
        skew = parsedate_to_datetime(date).timestamp() - time.time()
        ok = abs(skew) < 300
        out.append(
            Finding(
                "clock",
                ok,
                f"local clock is {-skew:+.1f}s off the store's",
                "" if ok else "run NTP on this machine: S3 refuses requests more than 15 minutes off",
                warning=ok and abs(skew) > 60,
            )
        )
    bucket_region = resp.headers.get("x-amz-bucket-region")
    if bucket_region and bucket_region != settings.region:
        out.append(
            Finding(
                "region",
                False,
                f"bucket is in {bucket_region}, configured {settings.region}",
                f"set region={bucket_region}",
            )
        )
    elif bucket_region:
        out.append(Finding("region", True, f"{bucket_region} (confirmed by the store)"))
    return out


def run_check(settings: Settings, app: Any, *, as_json: bool, out: TextIO) -> int:
    """Print the report (text, with colour on a terminal, or JSON) and return the exit status."""
    resolved, found = findings_for(settings, app)
    ok = all(f.ok for f in found) and bool(found)
    if as_json:
        out.write(
            json.dumps({"ok": ok, "configuration": resolved, "checks": [asdict(f) for f in found]}, indent=2) + "\n"
        )
        return 0 if ok else 1
    tty = out.isatty()

    def paint(text: str, colour: str) -> str:
        codes = {"green": "32", "red": "31", "yellow": "33"}
        return f"\033[{codes[colour]}m{text}\033[0m" if tty else text

    for name, value in resolved.items():
        out.write(f"{name:>18}: {value}\n")
    out.write("\n")
    for f in found:
        mark = paint("WARN", "yellow") if f.warning else (paint(" ok ", "green") if f.ok else paint("FAIL", "red"))
        latency = f" ({f.ms:.0f} ms)" if f.ms is not None else ""
        out.write(f"[{mark}] {f.name}: {f.detail}{latency}\n")
        if f.fix and (not f.ok or f.warning):
            out.write(f"       fix: {f.fix}\n")
    out.write("\n" + (paint("all good", "green") if ok else paint("problems found", "red")) + "\n")
    return 0 if ok else 1
