"""Where a store is known to answer differently from Amazon S3, and how.

Each entry is (store, check) -> (what the store answers, why). The conformance test asserts
*that* answer, so a change in the store's behaviour is noticed either way. The backend's
conditional-write probe (s3result/results/precondition.py) detects the ones that matter at run time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DIVERGENCES"]

_NANIO_PATHS = "nanio stores objects as files, so keys with empty or dot path segments are refused"
_NANIO_CONDITIONAL = "nanio ignores If-None-Match and If-Match and always writes"
_SWIFT_CONDITIONAL = "Swift's s3api answers 501 Not Implemented to conditional PUTs"

DIVERGENCES: dict[tuple[str, str], tuple[Any, str]] = {
    # moto: an emulator; it checks signatures but not the payload hash nor the request time.
    ("moto", "tampered_body"): ("accepted", "moto does not compare x-amz-content-sha256 with the body"),
    ("moto", "clock_20_minutes_off"): ((404, "NoSuchKey"), "moto does not check the request time"),
    # nanio: a minimal filesystem-backed server.
    ("nanio", "key_1024_bytes"): ("rejected: 500 InternalError", "a 1024-byte key exceeds the file-name limit"),
    ("nanio", "key_double_slash"): ("rejected: 400 InvalidObjectName", _NANIO_PATHS),
    ("nanio", "key_leading_slash"): ("rejected: 400 InvalidObjectName", _NANIO_PATHS),
    ("nanio", "key_dot_segments"): ("rejected: 400 InvalidObjectName", _NANIO_PATHS),
    ("nanio", "tampered_body"): ("accepted", "nanio does not compare x-amz-content-sha256 with the body"),
    ("nanio", "if_none_match_on_existing_key"): (("200", "overwritten"), _NANIO_CONDITIONAL),
    ("nanio", "if_match_stale_etag"): ((200, "overwritten"), _NANIO_CONDITIONAL),
    ("nanio", "if_match_missing_key"): ("200", _NANIO_CONDITIONAL),
    ("nanio", "concurrent_creates_one_winner"): ("several winners", _NANIO_CONDITIONAL),
    ("nanio", "compare_and_swap_counter"): ("lost updates", _NANIO_CONDITIONAL),
    # Ceph RGW 16.2 rejects a quoted ETag in If-Match (https://github.com/block/buzz/issues/3002),
    # and S3 clients send it quoted, as S3 returns it.
    ("ceph", "if_match_current_etag"): (412, "Ceph RGW 16.2 compares If-Match without the ETag's quotes"),
    ("ceph", "compare_and_swap_counter"): ("no progress", "Ceph RGW 16.2 refuses every quoted If-Match"),
    # OpenStack Swift 2.30 with s3api and tempauth: conditional PUTs are not implemented
    # (https://docs.openstack.org/swift/latest/s3_compat.html).
    ("swift", "unknown_access_key"): (
        (403, "SignatureDoesNotMatch"),
        "tempauth answers SignatureDoesNotMatch for a key it does not know",
    ),
    ("swift", "if_none_match_on_existing_key"): (("501 NotImplemented", "unchanged"), _SWIFT_CONDITIONAL),
    ("swift", "if_none_match_on_missing_key"): (501, _SWIFT_CONDITIONAL),
    ("swift", "if_match_current_etag"): (501, _SWIFT_CONDITIONAL),
    ("swift", "if_match_stale_etag"): ((501, "unchanged"), _SWIFT_CONDITIONAL),
    ("swift", "if_match_missing_key"): ("501", _SWIFT_CONDITIONAL),
    ("swift", "concurrent_creates_one_winner"): ("refused by every writer", _SWIFT_CONDITIONAL),
    ("swift", "compare_and_swap_counter"): ("refused: 501 NotImplemented", _SWIFT_CONDITIONAL),
}
