"""Reading a store's answer for throttling: is it a "slow down", and how long did it ask to wait.

Pure functions of an answer's status, code and headers, apart from the pacer that acts on them
(``limiter.py``): the client asks these first, then hands the wait to the store's pacer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

__all__ = ["is_throttling", "retry_after"]

# botocore/retries/standard.py THROTTLING_ERROR_CODES, plus MinIO's SlowDownRead/SlowDownWrite
# (matched by prefix). Not 500 InternalError nor a plain 503 ServiceUnavailable: those are the
# store failing, retried with the retry quota, never waited out as throttling.
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "PriorRequestNotComplete",
    }
)
#: The longest Retry-After honoured: a store asking for more is waited out by ``throttle_wait``.
_MAX_RETRY_AFTER = 60.0


def is_throttling(method: str, status: int, code: str, headers: Mapping[str, str]) -> bool:
    """Whether an error answer says "slow down": 429, a throttling code, or a 503 with Retry-After.

    A HEAD's 503 has no body to carry ``SlowDown``: S3 throttles HEAD like GET, so it counts.
    """
    if status == 429 or code.startswith("SlowDown") or code in _THROTTLING_CODES:
        return True
    return status == 503 and ("retry-after" in headers or method == "HEAD")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the store asked us to wait (RFC 9110 10.2.3: seconds or an HTTP date), capped."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)
