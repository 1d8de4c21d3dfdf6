"""What each check's answer means for s3result: pass, differs (and what that costs), or fail.

A check that sees what Amazon S3 answers passes. Any other answer either *differs*, when
s3result still works correctly on the store (a message says what changes), or *fails*, when a
semantic s3result relies on does not hold. The pytest suite in the repository asserts the exact
answers per store; this table is what ``s3result conformance`` tells a user about theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MEANINGS", "Meaning"]


@dataclass(frozen=True)
class Meaning:
    """The semantic a check tests, and what a different answer means for s3result."""

    semantic: str
    #: What a different answer means, in one sentence.
    if_different: str
    #: Whether a different answer breaks s3result (True), or only changes something (False).
    #: A callable decides from the observed answer where both can happen.
    breaks: bool | Callable[[Any], bool] = False
    #: What a breaking answer means, where it says more than ``if_different``.
    if_broken: str | None = None

    def fails(self, observed: Any) -> bool:
        return self.breaks(observed) if callable(self.breaks) else self.breaks

    def meaning(self, observed: Any) -> str:
        """The sentence for this answer: the breaking one's where it has its own."""
        return self.if_broken if self.if_broken is not None and self.fails(observed) else self.if_different


_STORED = "results are not stored and read back byte for byte: s3result cannot keep results here"
_KEYS = "keys like these are refused: keep the prefix and task ids to plain characters (Celery's UUIDs are fine)"
_CONDITIONAL = (
    "the store ignores If-None-Match/If-Match (it writes where the condition must refuse): s3result's probe "
    "turns conditional writes off, so a late duplicate can overwrite a result and chords use chord_unlock; "
    "never set conditional_writes=etag on this store"
)
_REFUSED = (
    "the store refuses a condition that holds: s3result's probe turns conditional writes off and stays "
    "correct (plain PUTs, as Celery's other backends; chords use chord_unlock); set conditional_writes=disabled "
    "to skip the probe"
)
_AUTH = "a wrong key is not named as such: check and errors say less precisely which credential is wrong"


def _ignored(observed: Any) -> bool:
    """A conditional write the store *applied* where it had to refuse: the semantic is broken.

    A store that refuses a condition that holds (Ceph RGW 16.2 compares If-Match without the
    quotes, Swift answers 501) only costs the fallback; one that says yes and overwrites (nanio)
    would lose a result to any writer that trusts it.
    """
    text = " ".join(str(part) for part in observed) if isinstance(observed, tuple) else str(observed)
    return any(word in text for word in ("overwritten", "several winners", "lost updates")) or text.startswith("2")


#: One meaning for every conditional-write check; what was observed tells ignored from refused.
_CONDITIONAL_MEANING = Meaning("conditional writes", _REFUSED, _ignored, _CONDITIONAL)


def _no_auth(observed: Any) -> bool:
    """A store that takes a wrong signature serves anyone: that is not a detail."""
    return isinstance(observed, tuple) and isinstance(observed[0], int) and observed[0] < 300


MEANINGS: dict[str, Meaning] = {
    "put_then_get": Meaning("round trips", _STORED, True),
    "overwrite": Meaning("round trips", "a later state does not replace an earlier one", True),
    "zero_byte_object": Meaning("round trips", _STORED, True),
    "one_mib_object": Meaning("round trips", _STORED, True),
    "etag_is_quoted_md5": Meaning(
        "integrity", "ETags are not the body's MD5: reads are checked with the CRC32 s3result stores as metadata"
    ),
    "head_content_length": Meaning("HEAD", "HEAD gives another size: s3result reads results with GET, so no change"),
    "head_missing_key": Meaning("missing keys", "a missing key's HEAD is not a bare 404: forget may say less"),
    "get_missing_key": Meaning(
        "missing keys", "a missing key's GET is not 404 NoSuchKey: s3result cannot tell a pending result", True
    ),
    "delete_missing_key": Meaning("missing keys", "deleting a missing key is not a 204: forget may report it"),
    "missing_bucket": Meaning(
        "missing keys", "a missing bucket is not 404 NoSuchBucket: check and errors name it less clearly"
    ),
    "key_special_characters": Meaning("keys", _KEYS),
    "key_unicode": Meaning("keys", _KEYS),
    "key_1024_bytes": Meaning("keys", "long keys are refused: keep prefix plus task id well under 1024 bytes"),
    "key_double_slash": Meaning("keys", _KEYS),
    "key_leading_slash": Meaning("keys", _KEYS),
    "key_dot_segments": Meaning("keys", _KEYS),
    "user_metadata": Meaning(
        "integrity", "user metadata is dropped: where the ETag is not the body's MD5, reads go unchecked"
    ),
    "checksum_on_get": Meaning(
        "integrity",
        "the stored CRC32 is changed on GET: every read would fail its check",
        lambda observed: observed != "not returned",
    ),
    "checksum_on_head": Meaning("integrity", "the stored CRC32 is not on HEAD: reads (GET) are unaffected"),
    "checksum_after_overwrite": Meaning(
        "integrity", "a stale CRC32 outlives an overwrite: the later state's read would fail its check", True
    ),
    "checksum_verified_on_read": Meaning("integrity", "s3result's own read of a stored result fails its check", True),
    "content_type": Meaning("headers", "Content-Type is not kept: s3result does not rely on it"),
    "sse_s3_header": Meaning(
        "headers",
        "sse=AES256 cannot be used here (it is opt-in)",
        lambda observed: observed == "accepted, body changed",
    ),
    "wrong_secret": Meaning("authentication", _AUTH, _no_auth),
    "unknown_access_key": Meaning("authentication", _AUTH, _no_auth),
    "tampered_body": Meaning(
        "authentication", "does not verify payload hashes; s3result's CRC32 still catches a corrupted read"
    ),
    "clock_20_minutes_off": Meaning(
        "authentication", "does not check the request time: a worker with a wrong clock is not told here"
    ),
    "if_none_match_on_existing_key": _CONDITIONAL_MEANING,
    "if_none_match_on_missing_key": _CONDITIONAL_MEANING,
    "if_match_current_etag": _CONDITIONAL_MEANING,
    "if_match_stale_etag": _CONDITIONAL_MEANING,
    "if_match_missing_key": _CONDITIONAL_MEANING,
    "concurrent_creates_one_winner": _CONDITIONAL_MEANING,
    "compare_and_swap_counter": _CONDITIONAL_MEANING,
    "read_after_write_and_delete": Meaning(
        "consistency", "a result just stored can read as pending, or a forgotten one as present", True
    ),
}
