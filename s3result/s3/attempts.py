"""One attempt's answer judged, then the next attempt waited for, or the error raised.

The client's pipeline sends each attempt (``S3Client.send``); these two steps say what came
back means (``judge``: a success with its body checked, a missing key, throttling, a correction
to make, or an error) and whether to try again (``wait_or_raise``: the retry policy, the
deadline and the retry quota). State stays in the request's ``Progress``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .errordoc import is_missing_key
from .errors import BodyTooLarge, S3Error, TransportError
from .integrity import body_mismatch, looks_like_html
from .progress import AGAIN, Again, Progress, Waiting
from .reads import MIN_ATTEMPT_S
from .request import Request
from .response import RawResponse, Transport
from .retry import Backoff, RetryConfig, RetryQuota, is_retryable
from .throttling import is_throttling, retry_after

__all__ = ["judge", "throttled", "transmit", "wait_or_raise"]

# The client's logger: retries are the client's, whatever module logs them.
logger = logging.getLogger("s3result.s3.client")


def transmit(
    transport: Transport,
    request: Request,
    target: bytes,
    wire: list[tuple[bytes, bytes]],
    *,
    base: str,
    endpoint_setting: str = "endpoint_url",
) -> RawResponse | Exception:
    """One attempt on ``transport``; a transport failure is returned, named, for the retry step.

    ``endpoint_setting``: what the fix calls the endpoint (the variable that set it, if one did).
    """
    method = request.method
    try:
        if request.deadline is None:
            return transport.request(method.encode(), target, wire, request.body)
        # A deadline already passed still gets a short try: get(timeout=0) polls once.
        left = max(request.deadline - time.monotonic(), MIN_ATTEMPT_S)
        return transport.request(method.encode(), target, wire, request.body, timeout=left)
    except BodyTooLarge as exc:
        raise BodyTooLarge(f"S3 {method} {request.label}: {exc}") from None
    except TransportError as exc:
        text = str(exc) if endpoint_setting == "endpoint_url" else str(exc).replace("endpoint_url", endpoint_setting)
        error = type(exc)(f"S3 {method} {request.label} to {base}: {text}", method=method, key=request.name)
        error.__cause__ = exc
        return error


def judge(
    request: Request,
    resp: RawResponse,
    progress: Progress,
    *,
    error_for: Callable[[], S3Error],
    md5_etags: bool,
    quota: RetryQuota,
    throttle_wait: float,
    recover: Callable[[S3Error], bool],
) -> RawResponse | None | Exception | Again:
    """What an answer means: the response, None (a missing key), ``AGAIN`` (corrected) or an error."""
    if resp.status < 300:
        progress.pacer.succeeded()
        if request.subresource:
            return resp
        if looks_like_html(resp):
            # S3 never answers a key operation with a web page; a proxy, a login portal or
            # a wrong port does. Reported, not stored as a result.
            raise error_for()
        corrupt = body_mismatch(request.key, resp, md5_etags=md5_etags) if request.method == "GET" else None
        if corrupt is None:
            quota.release(progress.cost)
            return resp
        if progress.corrupted:
            raise corrupt  # a wrong body twice: raised, never decoded, never tried a third time
        progress.corrupted = True
        progress.max_attempts = max(progress.max_attempts, progress.attempt + 1)  # even a poll's single try
        return corrupt
    if request.missing_ok and is_missing_key(resp.status, resp.body):
        # "Not there yet" is an answer, not a failure: no error is built (a pending poll's cost).
        progress.pacer.succeeded()
        quota.release(progress.cost)
        return None
    error = error_for()
    if is_throttling(request.method, resp.status, error.code, resp.headers):
        # Back-pressure, not a failure: no attempt, no retry quota spent.
        progress.throttled = progress.throttled or throttled(request, progress, throttle_wait)
        progress.throttled.answered(error, progress.sent, retry_after(resp.headers))
        progress.attempt -= 1
        return AGAIN
    progress.pacer.succeeded()  # served: a 404 "not yet" or a 412 counts as much as a 200
    if recover(error):
        return AGAIN
    return error


def throttled(request: Request, progress: Progress, throttle_wait: float) -> Waiting:
    """The request's turns and budget once the store throttles it (``limiter``)."""
    return progress.pacer.throttled_request(throttle_wait, request.method, request.name)


def wait_or_raise(
    request: Request, error: Exception, progress: Progress, *, retry: RetryConfig, backoff: Backoff, quota: RetryQuota
) -> None:
    """Wait before the next attempt, or raise ``error`` when the policy says to stop."""
    if not is_retryable(error, idempotent=request.idempotent, retry_conflict=request.retry_on_conflict):
        if isinstance(error, S3Error):
            # The store answered (a 412 lost race): the retries that led here are refunded as
            # after a success, or reads through a flaky network would drain the quota.
            quota.release(progress.cost)
        raise error
    if progress.attempt >= progress.max_attempts:
        raise error
    pause = backoff.delay(progress.attempt)
    if request.deadline is not None and time.monotonic() + pause >= request.deadline:
        raise error  # no time left for another attempt
    progress.cost = quota.acquire(error)
    if progress.cost is None:
        logger.warning("s3result: retry quota exhausted, not retrying %s %s: %s", request.method, request.label, error)
        raise error
    backoff.sleep(pause)
    logger.info(
        "s3result: retrying %s %s (attempt %d of %d) in %.3fs after: %s",
        request.method,
        request.label,
        progress.attempt + 1,
        retry.max_attempts,
        pause,
        error,
    )
