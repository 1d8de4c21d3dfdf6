"""What an error answer teaches the client before its next attempt: region, clock, token.

Pure decisions, no I/O: the client asks each function whether an answer names something to
correct (the bucket's real region, the store's clock, a session token the store no longer
honours), applies it, and signs the retry again. Each correction is made once per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import S3Error
from .response import RawResponse, redirect_host

__all__ = ["EXPIRED_TOKEN_CODES", "clock_offset_to_learn", "region_to_learn", "rejected_token"]

# Codes that mean "your clock is off", not "your key is wrong" (botocore's list, for S3).
_SKEW_CODES = frozenset({"RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture", "InvalidSignatureException"})
# A 403 without one of those codes corrects the clock only when the store's clock is this far off.
_SKEW_THRESHOLD = 240.0
#: "Your session token expired": botocore refreshes and retries on these.
#: InvalidToken: an S3 Express session the store no longer honours.
EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken"})
# The region in an AWS S3 host name: bucket.s3.eu-west-1.amazonaws.com, s3-eu-west-1.amazonaws.com,
# s3.dualstack.eu-west-1.amazonaws.com, and the China partition's .amazonaws.com.cn.
_AWS_REGION_HOST = re.compile(r"(?:^|\.)s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$")


def region_to_learn(error: S3Error, resp: RawResponse, *, current: str, endpoint_given: bool) -> str | None:
    """The region to switch to when the store names the right one (301, or a malformed auth).

    A 307 from AWS itself (no endpoint_url) names the bucket's regional endpoint: its region is
    learnt the same way, so the retry goes to the regional endpoint the client builds itself,
    never to the host the answer names.
    """
    region = resp.headers.get("x-amz-bucket-region") or error.region
    relevant = error.status == 301 or error.code in ("AuthorizationHeaderMalformed", "PermanentRedirect")
    if error.status == 307:
        if endpoint_given:
            return None
        found = _AWS_REGION_HOST.search(redirect_host(resp).lower())
        region = region or (found.group(1) if found else "")
        relevant = True
    if not relevant or not region or region == current:
        return None
    return region


def clock_offset_to_learn(
    error: S3Error, resp: RawResponse, *, clock: Callable[[], float], current_offset: float
) -> float | None:
    """The offset to add to the local clock when the store says it is off (from its Date header).

    ``clock`` is read only when the answer is about the clock.
    """
    if error.code not in _SKEW_CODES and error.status != 403:
        return None
    date = resp.headers.get("date")
    if not date:
        return None
    from email.utils import parsedate_to_datetime  # only ever needed on this error path

    try:
        server = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    offset = server - clock()
    if error.code not in _SKEW_CODES and abs(offset - current_offset) < _SKEW_THRESHOLD:
        return None
    if abs(offset - current_offset) < 1.0:
        return None
    return offset


def rejected_token(wire: list[tuple[bytes, bytes]], header: bytes) -> str | None:
    """The session token a refused request carried in ``header`` (lower-case), if any."""
    return next((v.decode() for k, v in wire if k.lower() == header), None)
