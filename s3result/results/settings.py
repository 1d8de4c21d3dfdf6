"""The settings object: plain, validated, frozen configuration, and what it derives.

``config`` builds it (from a URL, Celery's settings, the legacy dict and the environment) and
validates every value once; everything else in s3result only reads it. It is hashable, so a
process keeps one client per distinct settings (``clients``). The S3 client's part of it is
an ``S3Config`` (``Settings.s3``), derived once when the settings are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..s3.config import Addressing, S3Config, StoreId, is_aws_endpoint

__all__ = ["SCHEME", "Addressing", "ConditionalWrites", "Settings", "is_aws_endpoint"]

#: The URL scheme of the result backend (``s3result://``, ``s3result+https://``).
SCHEME = "s3result"


class ConditionalWrites(str, Enum):
    """Whether writes use If-None-Match/If-Match: probe the store, trust it, or never."""

    PROBE = "probe"
    ETAG = "etag"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Settings:
    """Plain, validated configuration; required fields are never None."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    addressing: Addressing = Addressing.AUTO
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 32
    max_attempts: int = 3
    #: Seconds one request may spend waiting out the store's throttling (503 SlowDown, 429)
    #: before ``Throttled`` is raised; waiting then is pacing, not failing (``limiter``).
    throttle_wait: float = 60.0
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    conditional_writes: ConditionalWrites = ConditionalWrites.PROBE
    max_result_size: int = 64 * 1024 * 1024
    ca_bundle: str | None = None
    #: Seconds from a waiting call's first poll to its second; each later wait doubles, up to
    #: the caller's ``interval``. None polls every ``interval`` (Celery's fixed loop).
    poll_initial_delay: float | None = 0.025
    #: Wake waiting callers with a notification over the broker (Redis, RabbitMQ); off: poll only.
    notify: bool = True
    #: Where the secret key was given ("the result_backend URL", "s3_secret_access_key", ...),
    #: so an error about a wrong secret points at the place to fix it.
    secret_origin: str | None = None
    #: Where the endpoint was given (``AWS_ENDPOINT_URL_S3``, "the result_backend URL", ...): a store
    #: that does not answer is looked for where the user set it, which may be their shell's environment.
    endpoint_origin: str | None = None
    #: S3 Express One Zone: the CreateSession mode asked for (ReadWrite, ReadOnly); None lets S3 choose.
    session_mode: str | None = None
    #: The S3 client's configuration, derived from the fields above (``__post_init__``).
    s3: S3Config = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        s3 = S3Config(
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
            region=self.region,
            addressing=self.addressing,
            access_key=self.access_key,
            secret_key=self.secret_key,
            session_token=self.session_token,
            profile=self.profile,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_connections=self.max_connections,
            max_attempts=self.max_attempts,
            throttle_wait=self.throttle_wait,
            max_body_size=self.max_result_size,
            sse=self.sse,
            sse_kms_key_id=self.sse_kms_key_id,
            storage_class=self.storage_class,
            ca_bundle=self.ca_bundle,
            session_mode=self.session_mode,
            secret_origin=self.secret_origin,
            endpoint_origin=self.endpoint_origin if (self.endpoint_origin or "").startswith("AWS_") else None,
        )
        object.__setattr__(self, "s3", s3)

    def __repr__(self) -> str:
        key = "***" if self.access_key else None
        secret = "***" if self.secret_key else None
        token = "***" if self.session_token else None
        return (
            f"Settings(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r}, "
            f"region={self.region!r}, access_key={key}, secret_key={secret}, "
            f"session_token={token}, addressing={self.addressing.value!r})"
        )

    @property
    def is_aws(self) -> bool:
        """True when talking to Amazon S3 itself (no endpoint, or an amazonaws.com one)."""
        return self.s3.is_aws

    @property
    def express(self) -> bool:
        """A directory bucket (S3 Express One Zone): zonal endpoint, session credentials."""
        return self.s3.express

    @property
    def path_style(self) -> bool:
        """Whether the bucket goes in the path (``S3Config.path_style``)."""
        return self.s3.path_style

    @property
    def base_url(self) -> str:
        """Scheme and authority the requests go to, without the bucket in the path."""
        return self.s3.base_url

    @property
    def store_id(self) -> StoreId:
        """This bucket's identity on its store (``S3Config.store_id``)."""
        return self.s3.store_id

    def object_key(self, name: str) -> str:
        """Base path joined with ``/``, then Celery's key, with no leading slash."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def redacted_url(self) -> str:
        """A URL that rebuilds these settings, minus the credentials: ``***@`` where they were.

        The access key ID goes too: not a secret strictly, but it names an account's key, and
        no credential material is shown in logs, reprs, errors or URLs.
        """
        user = "***@" if self.access_key else ""
        path = f"/{self.prefix}" if self.prefix else ""
        if self.endpoint_url is None:
            url = f"{SCHEME}://{user}{self.bucket}{path}?region={self.region}"
        else:
            scheme, _, host = self.endpoint_url.partition("://")
            url = f"{SCHEME}+{scheme}://{user}{host.rstrip('/')}/{self.bucket}{path}"
        return url
