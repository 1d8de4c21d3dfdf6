"""The client's recovery step: apply what an error answer teaches, once each per request.

``recovery`` decides from an answer what to learn (pure); this step applies it to the client
that sent the request: switch to the bucket's region, correct the clock by the store's, or
fetch credentials again when the store says the session token expired. The client then signs
and sends again at once (no retry spent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .recovery import EXPIRED_TOKEN_CODES, clock_offset_to_learn, region_to_learn, rejected_token

if TYPE_CHECKING:
    from .config import S3Config
    from .credentials.chain import CredentialSource
    from .errors import S3Error
    from .progress import Progress
    from .response import RawResponse

__all__ = ["Correctable", "correct"]

# The client's logger: these warnings are the client's, whatever module says them.
logger = logging.getLogger("s3result.s3.client")


class Correctable(Protocol):
    """What the recovery step reads and changes on the client."""

    config: S3Config
    region: str
    clock_offset: float
    session: CredentialSource | None

    @property
    def credentials(self) -> CredentialSource: ...

    def switch_region(self, region: str) -> None: ...


def correct(
    client: Correctable,
    error: S3Error,
    resp: RawResponse,
    wire: list[tuple[bytes, bytes]],
    progress: Progress,
    *,
    session: bool,
    clock: Callable[[], float],
) -> bool:
    """Correct what the answer names (region, clock, session token), each once per request."""
    if not progress.fixed_region and _learn_region(client, error, resp):
        progress.fixed_region = True
        return True
    if not progress.fixed_clock and _learn_clock(client, error, resp, clock):
        progress.fixed_clock = True
        return True
    if not progress.fixed_token and _renew_token(client, error, wire, session=session):
        progress.fixed_token = True
        return True
    return False


def _learn_region(client: Correctable, error: S3Error, resp: RawResponse) -> bool:
    """Switch region once when the store names the right one (see ``recovery``)."""
    config = client.config
    region = region_to_learn(error, resp, current=client.region, endpoint_given=config.endpoint_url is not None)
    if region is None:
        return False
    logger.warning(
        "s3result: bucket %r is in region %s, not %s; using %s (set region=%s to skip this)",
        config.bucket,
        region,
        client.region,
        region,
        region,
    )
    client.switch_region(region)
    return True


def _renew_token(client: Correctable, error: S3Error, wire: list[tuple[bytes, bytes]], *, session: bool) -> bool:
    """Fetch credentials again once when the store says the session token expired.

    The provider's stated expiry is what the chain refreshes by; a rotated or revoked
    token ends sooner. Fresh credentials heal that; the same ones (a static token that
    really expired) do not, and the error is raised as before.
    """
    if error.code not in EXPIRED_TOKEN_CODES:
        return False
    source, header = (
        (client.credentials, b"x-amz-security-token")
        if client.session is None or not session
        else (client.session, b"x-amz-s3session-token")
    )
    if not source.refresh_rejected(rejected_token(wire, header)):
        return False
    logger.warning("s3result: the store says the session token expired; signing with refreshed credentials")
    return True


def _learn_clock(client: Correctable, error: S3Error, resp: RawResponse, clock: Callable[[], float]) -> bool:
    """Correct the clock once from the store's Date header when the store says it is off."""
    offset = clock_offset_to_learn(error, resp, clock=clock, current_offset=client.clock_offset)
    if offset is None:
        return False
    logger.warning("s3result: local clock is %.0fs off the store's; correcting signatures by that much", -offset)
    client.clock_offset = offset
    return True
