"""``s3result check``: the resolved configuration, then live probes, layer by layer, each with a fix.

It reads the same settings a worker would, shows where the credentials came from (never the
secret), and tries what a worker does, in order: the network (one GET of a missing key: refused,
unresolvable, silent, plain HTTP behind https, an unverifiable certificate), authentication (the
store's verdict on the signature), permissions (PUT, GET, HEAD, DELETE of a probe key; 403 on the
missing key means s3:ListBucket is missing), then the store's features (conditional writes,
clock, region), expiry (a lifecycle rule on the prefix) and pickle. Probes use short timeouts and
one attempt; the first transport failure ends the run; an IAM fix is given only for a 403
AccessDenied. Exit status 0 when all is well, 1 otherwise.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import (
    NOT_S3,
    ConfigError,
    NotFound,
    S3Error,
    S3ResultError,
    TransportError,
)
from ..results.precondition import probe
from ..s3.client import S3Client
from ..s3.errors import default_hint
from .expiry_check import expiry_findings
from .findings import PROBE_CONNECT_TIMEOUT, Finding, arn, diagnose_transport, host_port, timed

if TYPE_CHECKING:
    from ..results.config import Settings

__all__ = [
    "Finding",
    "diagnose_transport",
    "expiry_findings",
    "findings_for",
    "iter_findings",
    "run_check",
    "security_findings",
]


def _iam_fix(settings: Settings, action: str, objects: bool = True) -> str:
    return f'grant "{action}" on "{arn(settings, objects)}" to these credentials'


PROBE_READ_TIMEOUT = 5.0
#: The longest one probe may take end to end. A read timeout bounds each wait, not the
#: whole answer: a server sending a byte every second never trips it. Several requests of
#: one probe (the conditional-write probe) fit well within this on any live store.
PROBE_LIMIT = 15.0
_AUTH_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken", "RequestTimeTooSkewed"}
)


def _probe_settings(settings: Settings) -> Settings:
    """The user's settings with short timeouts and one attempt: a probe reports, it does not wait."""

    return replace(
        settings,
        connect_timeout=min(settings.connect_timeout, PROBE_CONNECT_TIMEOUT),
        read_timeout=min(settings.read_timeout, PROBE_READ_TIMEOUT),
        max_attempts=1,
    )


def findings_for(settings: Settings, app: Any = None) -> tuple[dict[str, Any], list[Finding]]:
    """Everything ``check`` reports, as data."""
    client = S3Client(_probe_settings(settings).s3)
    resolved, first = _resolve(client, settings)
    return resolved, [*first, *iter_findings(client, settings, app, resolved)]


def _resolve(client: S3Client, settings: Settings) -> tuple[dict[str, Any], list[Finding]]:
    """The configuration as a worker resolves it; a credentials finding when none are found."""
    creds_source = ""
    found: list[Finding] = []
    try:
        creds = client.credentials.get()
        # The last four characters tell two keys apart (as `aws configure list` does); the
        # whole ID is never printed.
        hint = f" (access key ending in {creds.access_key[-4:]})" if len(creds.access_key) >= 16 else ""
        creds_source = f"{creds.source}{hint}"
    except ConfigError as exc:  # half of a key pair, a pasted space: the message names the variable
        found.append(Finding("credentials", False, str(exc), exc.detail.rpartition("; ")[2]))
        creds_source = "not usable (below)"
    except S3ResultError as exc:
        found.append(Finding("credentials", False, str(exc), "configure credentials (see the README's table)"))
    resolved = {
        "endpoint": client.base_url,
        **({"endpoint_from": settings.endpoint_origin} if _given_by(settings) else {}),
        "bucket": settings.bucket,
        "prefix": settings.prefix,
        "region": settings.region,
        "addressing": "path-style" if settings.path_style else "virtual-hosted",
        "credentials": creds_source or "none found",
        "conditional_writes": str(settings.conditional_writes),
    }
    return resolved, found


def _given_by(settings: Settings) -> str:
    """ " (from AWS_ENDPOINT_URL_S3)": an endpoint the user's environment set is not where they look."""
    origin = settings.endpoint_origin
    return f" (from {origin})" if origin and origin.startswith("AWS_") else ""


def _transport(error: TransportError, client: S3Client, settings: Settings) -> tuple[str, str]:
    """``diagnose_transport``, its fix naming the variable that set the endpoint when one did."""
    detail, fix = diagnose_transport(error, client)
    given = _given_by(settings)
    if given and "endpoint_url" in fix:
        fix = fix.replace("endpoint_url", f"the endpoint{given}", 1)
    return detail, fix


def _hint(error: S3Error) -> str:
    return error.hint or default_hint(error.code)


def iter_findings(
    client: S3Client, settings: Settings, app: Any, resolved: dict[str, Any], *, target: str = ""
) -> Iterator[Finding]:
    """The probes, layer by layer, each yielded as soon as it is known.

    Network first, then authentication, then permissions, then what the store can do. The
    first transport failure ends the run (every later probe would fail the same way), and an
    IAM fix is only ever given for a 403 AccessDenied.
    """
    if resolved["credentials"] in ("none found", "not usable (below)"):
        return  # nothing can be signed: every probe would claim what was never sent
    key = settings.object_key(f"s3result-check/{uuid.uuid4().hex}")
    missing = settings.object_key(f"s3result-check/missing-{uuid.uuid4().hex}")
    where = host_port(client)
    # 1. network and authentication: one GET of a key that does not exist (S3's 404 expected).
    found, ms, error = timed(lambda: _get_missing(client, missing))
    if isinstance(error, TransportError):
        detail, fix = _transport(error, client, settings)
        yield Finding("network", False, detail, fix, ms=ms)
        return
    if found is not None or (isinstance(error, S3Error) and _not_s3(error)):
        yield _not_s3_finding(where, found, error, ms)
        return
    yield Finding("network", True, f"{where} answers", ms=ms)
    if settings.express:  # a directory bucket: the session is what every later request stands on
        from .session_check import session_findings

        session = list(session_findings(client, settings))
        yield from session
        if not all(f.ok for f in session):
            return
    if isinstance(error, S3Error) and (error.code in _AUTH_CODES or error.status == 401):
        yield Finding("authentication", False, str(error), _hint(error) or "check the credentials", ms=ms)
        return
    if isinstance(error, S3Error) and error.code == "AccessDenied":
        # AWS checks the signature before the policy, but a store (or a proxy) that denies everything
        # answers the same 403 to any signature: the probes below tell.
        yield Finding(
            "authentication",
            True,
            "not confirmed: the store answered 403 AccessDenied, which a store denying every request sends too",
            "see the probes below; if every one is denied, check the credentials and the store's policies",
            warning=True,
        )
    else:
        yield Finding("authentication", True, "the store accepted the signature")
    if isinstance(error, NotFound) and error.code == "NoSuchBucket":
        yield Finding("bucket", False, str(error), _hint(error), ms=ms)
        return
    if error is None:
        yield Finding("GET missing key", True, "404, as S3 answers for a key that does not exist", ms=ms)
    elif isinstance(error, S3Error) and error.code == "AccessDenied":
        yield Finding("GET missing key", False, str(error), _iam_fix(settings, "s3:ListBucket", objects=False), ms=ms)
    else:
        yield Finding("GET missing key", False, str(error), _store_fix(error), ms=ms)
        return
    # 2. permissions: what a worker does with a result.
    steps: list[tuple[str, Any, str]] = [
        ("PUT", lambda: client.put(key, b"s3result check"), "s3:PutObject"),
        ("GET", lambda: client.get(key), "s3:GetObject"),
        ("HEAD", lambda: client.head(key), "s3:GetObject"),
        ("DELETE", lambda: client.delete(key), "s3:DeleteObject"),
    ]
    put_failed = False
    all_ok = True
    for name, call, action in steps:
        if put_failed and name in ("GET", "HEAD"):
            yield Finding(name, False, "skipped: the PUT failed, so there is no object to read", "fix the PUT first")
            continue
        _, ms, error = timed(call)
        put_failed = put_failed or (name == "PUT" and error is not None)
        all_ok = all_ok and error is None
        if error is None:
            yield Finding(name, True, "ok", ms=ms)
        elif isinstance(error, TransportError):
            detail, fix = _transport(error, client, settings)
            yield Finding(name, False, detail, fix, ms=ms)
            return
        elif isinstance(error, S3Error) and error.code == "AccessDenied":
            yield Finding(name, False, str(error), _iam_fix(settings, action), ms=ms)
        else:
            yield Finding(name, False, str(error), _store_fix(error), ms=ms)
    # 3. what the store can do.
    if all_ok:
        verdict, ms, error = timed(lambda: probe(client, settings.prefix))
        if isinstance(error, TransportError):
            detail, fix = _transport(error, client, settings)
            yield Finding("conditional writes", False, detail, fix, ms=ms)
            return
        if error is not None:
            yield Finding("conditional writes", False, str(error), _store_fix(error), ms=ms)
        elif verdict.ok:
            yield Finding("conditional writes", True, "supported: one request per write, native chords", ms=ms)
        else:
            yield Finding(
                "conditional writes",
                True,
                f"not usable ({verdict.reason}): read-then-write and chord_unlock are used",
                "nothing to do; conditional_writes=disabled skips this probe",
                ms=ms,
                warning=True,
            )
    yield from _clock_and_region(client, settings, missing)
    yield from expiry_findings(client, settings, app, target=target)
    yield from security_findings(settings, app)


def _get_missing(client: S3Client, key: str) -> Any:
    """GET a key that cannot exist: None for S3's 404, the answer when there is one (not S3)."""
    try:
        return client.get(key)
    except NotFound as exc:
        if exc.code == "NoSuchBucket" or _not_s3(exc):
            raise
        return None


def _not_s3(error: S3Error) -> bool:
    """An answer no S3 API gives: a page instead of S3 XML, or a bare 404 to a GET (S3 says NoSuchKey)."""
    bare = isinstance(error, NotFound) and error.code == "NotFound" and not error.message and not error.request_id
    return error.code == NOT_S3 or bare


def _not_s3_finding(where: str, found: Any, error: BaseException | None, ms: float) -> Finding:
    fix = (
        "check endpoint_url: it must be the store's S3 API (scheme, host and port), not a web server or another service"
    )
    if found is not None:
        return Finding(
            "network", False, f"{where} answers, but not as an S3 API: 200 for a key that cannot exist", fix, ms=ms
        )
    assert isinstance(error, S3Error)
    if error.status >= 500:
        return Finding(
            "network",
            False,
            f"{where} answers {error.status} with a page, not S3: a proxy or load balancer whose store is down "
            f"or unreachable ({error})",
            "check that the store behind endpoint_url is running, and the proxy's logs",
            ms=ms,
        )
    return Finding("network", False, f"{where} answers, but not as an S3 API: {error}", fix, ms=ms)


def _store_fix(error: BaseException) -> str:
    """The fix for a failure that is not a permission: never an IAM grant."""
    if isinstance(error, S3Error):
        return _hint(error) or f"the store answered {error.status} {error.code}: see its logs or its documentation"
    return "see the error above"


def _clock_and_region(client: S3Client, settings: Settings, missing: str) -> Iterator[Finding]:
    try:
        resp = client.send_raw("HEAD", missing)
    except S3ResultError as exc:
        yield Finding("clock", False, f"no answer to compare clocks: {exc}", "check the endpoint")
        return
    date = resp.headers.get("date")
    if date:
        skew = parsedate_to_datetime(date).timestamp() - time.time()
        ok = abs(skew) < 300
        yield (
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
        yield (
            Finding(
                "region",
                False,
                f"bucket is in {bucket_region}, configured {settings.region}",
                f"set region={bucket_region}",
            )
        )
    elif bucket_region:
        yield (Finding("region", True, f"{bucket_region} (confirmed by the store)"))


def security_findings(settings: Settings, app: Any) -> Iterator[Finding]:
    """A secret Celery cannot mask; pickle in the results (whoever can write under the prefix runs code)."""
    conf = getattr(app, "conf", None)
    if conf is None:
        return
    from ..results.config import raw_slash_warning

    slash = raw_slash_warning(conf.get("result_backend"))
    if slash:
        what, _, fix = slash.partition("; ")
        yield Finding("security", True, what, fix, warning=True)
    accept = conf.get("result_accept_content") or conf.get("accept_content") or []
    serializer = str(conf.get("result_serializer") or "")
    names = {str(a).lower() for a in accept}
    if serializer == "pickle" or names & {"pickle", "application/x-python-serialize"}:
        yield Finding(
            "security",
            True,
            f"results are decoded with pickle: whoever can write under s3://{settings.bucket}/"
            f"{settings.prefix + '/' if settings.prefix else ''} can run code in every process that reads results",
            "set result_serializer='json' and result_accept_content=['json'] (or sign them with "
            "celery's auth serializer), and grant s3:PutObject on the prefix only to the workers",
            warning=True,
        )


def _bounded(findings: Iterator[Finding], client: S3Client, limit: float = PROBE_LIMIT) -> Iterator[Finding]:
    """``findings``, each within ``limit`` seconds, else one network failure and the end.

    The probes run in a daemon thread; one stuck on a trickling server is left behind (the
    command exits; its socket closes with the process) rather than holding the user forever.
    """
    import queue
    import threading

    done = object()
    box: queue.Queue[Any] = queue.Queue()

    def produce() -> None:
        try:
            for found in findings:
                box.put(found)
        except BaseException as exc:  # handed to the caller's thread, raised there
            box.put(exc)
        box.put(done)

    threading.Thread(target=produce, name="s3result-check", daemon=True).start()
    while True:
        try:
            item = box.get(timeout=limit)
        except queue.Empty:
            where = host_port(client)
            yield Finding(
                "network",
                False,
                f"{where} answers too slowly: one probe got no complete answer within {limit:g}s "
                "(a stalled or trickling transfer)",
                "is endpoint_url the store's S3 API? check the network path to it (a proxy, a congested link)",
            )
            return
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _once(finding: Finding) -> Finding:
    """The fix said once: an error's own text often ends with the same hint, in parentheses."""
    fix = finding.fix
    if fix and fix in finding.detail:
        detail = finding.detail.replace(f" ({fix})", "").replace(f"; {fix}", "").replace(fix, "").rstrip(" ;:")
        return replace(finding, detail=detail or finding.detail)
    return finding


def _as_json(finding: Finding) -> dict[str, Any]:
    """A finding's fields without the empty ones (no ``"fix": ""`` for a probe that passed)."""
    return {k: v for k, v in asdict(finding).items() if v not in ("", None)}


def run_check(settings: Settings, app: Any, *, as_json: bool, out: TextIO, target: str = "") -> int:
    """Print the report (text, with colour on a terminal, or JSON) and return the exit status.

    Text lines are written and flushed as each probe ends, so a slow store shows where it is slow.
    """
    client = S3Client(_probe_settings(settings).s3)
    resolved, first = _resolve(client, settings)
    if as_json:
        found = [*first, *_bounded(iter_findings(client, settings, app, resolved, target=target), client)]
        ok = all(f.ok for f in found) and bool(found)
        checks = [_as_json(_once(f)) for f in found]
        shown = {k: v for k, v in resolved.items() if v not in ("", None)}
        out.write(json.dumps({"ok": ok, "configuration": shown, "checks": checks}, indent=2) + "\n")
        return 0 if ok else 1
    tty = out.isatty()

    def paint(text: str, colour: str) -> str:
        codes = {"green": "32", "red": "31", "yellow": "33"}
        return f"\033[{codes[colour]}m{text}\033[0m" if tty else text

    for name, value in resolved.items():
        out.write(f"{name:>18}: {value}\n")
    out.write("\n")
    out.flush()
    ok, seen = True, 0
    for f in itertools.chain(first, _bounded(iter_findings(client, settings, app, resolved, target=target), client)):
        seen += 1
        ok = ok and f.ok
        f = _once(f)
        mark = paint("WARN", "yellow") if f.warning else (paint(" ok ", "green") if f.ok else paint("FAIL", "red"))
        latency = f" ({f.ms:.0f} ms)" if f.ms is not None else ""
        out.write(f"[{mark}] {f.name}: {f.detail}{latency}\n")
        if f.fix and (not f.ok or f.warning):
            out.write(f"       fix: {f.fix}\n")
        out.flush()
    ok = ok and seen > 0
    out.write("\n" + (paint("all good", "green") if ok else paint("problems found", "red")) + "\n")
    out.flush()
    return 0 if ok else 1
