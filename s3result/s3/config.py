"""S3Config: what the S3 client needs to know, and nothing about results.

Plain, frozen data: the bucket and where it is (endpoint, region, addressing), how to sign
(credentials given, or a profile for the AWS chain), how to reach it (timeouts, pool size,
CA bundle, attempts, the body cap) and how to write (server-side encryption, storage class).
``s3result.results.config`` builds one from a backend's settings; a script builds one directly:
``S3Config(bucket="b", endpoint_url="http://127.0.0.1:9000", region="us-east-1")``.

The directory-bucket (S3 Express One Zone) naming rules live here too, because addressing
depends on them; the session machinery is in ``express``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "Addressing",
    "DIRECTORY_SUFFIX",
    "S3Config",
    "StoreId",
    "is_aws_endpoint",
    "is_directory_bucket",
    "zonal_endpoint",
    "zone_id",
]

#: The suffix that makes a bucket name a directory bucket's (S3 Express One Zone).
DIRECTORY_SUFFIX = "--x-s3"
# The zone id lengths the S3 endpoint ruleset recognises ("usw2-az1", "use1-az12",
# "usw2-lax1-az1", "usw2-lax1-az12", Dedicated Local Zones' 20): it reads the id from the end
# of the name by these lengths, so a base name may itself hold "--".
_ZONE_ID_LENGTHS = (8, 9, 13, 14, 20)
_HOST_LABEL = re.compile(r"(?!-)[a-z\d-]{3,63}(?<!-)")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


class Addressing(str, Enum):
    """How the bucket is put in the request: ``auto`` picks per endpoint and bucket."""

    AUTO = "auto"
    PATH = "path"
    VIRTUAL = "virtual"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class StoreId:
    """Which bucket of which store: the one name every per-store table of a process uses.

    ``endpoint`` is where the requests go (``S3Config.base_url``: the endpoint, or the region's
    AWS endpoint, with the addressing applied), so two configurations that reach one bucket the
    same way share an identity, and credentials or timeouts play no part. ``str()`` is the
    spelling kept in the bucket (the conditional-write verdict's key digest), which stays as it was.
    """

    endpoint: str
    bucket: str

    def __str__(self) -> str:
        return f"{self.endpoint} {self.bucket}"


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Config:
    """One bucket's client configuration; ``repr`` never shows a credential.

    Credentials: ``access_key`` and ``secret_key`` (and ``session_token``) when given, else the
    AWS chain (environment, web identity, ``profile`` in the shared files, credential_process,
    container, instance metadata). ``max_body_size`` caps a response body (``BodyTooLarge``).
    """

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing: Addressing = Addressing.AUTO
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 32
    max_attempts: int = 3
    #: Seconds one request may spend waiting out the store's throttling (503 SlowDown, 429)
    #: before ``Throttled`` is raised; waiting then is pacing, not failing (``limiter``).
    throttle_wait: float = 60.0
    max_body_size: int = 64 * 1024 * 1024
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    ca_bundle: str | None = None
    #: S3 Express One Zone: the CreateSession mode asked for (ReadWrite, ReadOnly); None lets S3 choose.
    session_mode: str | None = None
    #: Where the secret key was given ("the result_backend URL", ...), named by a wrong-secret error.
    secret_origin: str | None = None
    #: The environment variable that gave ``endpoint_url`` (``AWS_ENDPOINT_URL_S3``), if one did:
    #: an error's fix then names that variable, which is what the user set.
    endpoint_origin: str | None = None

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ConfigError("bucket", "no bucket given")
        if not isinstance(self.addressing, Addressing):
            object.__setattr__(self, "addressing", Addressing(str(self.addressing).lower()))
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError("endpoint_url", "expected an http:// or https:// URL with a host")
            if "@" in parts.netloc:  # printed in every error and repr: a secret here would leak
                raise ConfigError("endpoint_url", "must not hold credentials; pass them as access_key and secret_key")
        if bool(self.access_key) != bool(self.secret_key):
            raise ConfigError("secret_key", "an access key and a secret key go together; give both or neither")
        if not self.region:
            raise ConfigError("region", "no region given; use the bucket's region, e.g. 'us-east-1'")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Timeouts, waits and sizes: a bad one fails here, named, not later inside a request."""
        limits: tuple[tuple[str, float, bool], ...] = (
            # field, least value, whether the least value itself is allowed
            ("connect_timeout", 0, False),
            ("read_timeout", 0, False),
            ("throttle_wait", 0, True),
            ("max_connections", 1, True),
            ("max_attempts", 1, True),
            ("max_body_size", 1, True),
        )
        for name, least, inclusive in limits:
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < least or (value == least and not inclusive):
                bound = f">= {least}" if inclusive else f"> {least}"
                raise ConfigError(name, f"expected a finite number {bound}, got {value!r}")

    def __repr__(self) -> str:
        key = "***" if self.access_key else None
        return (
            f"S3Config(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"access_key={key}, addressing={self.addressing.value!r})"
        )

    @property
    def is_aws(self) -> bool:
        """True when talking to Amazon S3 itself (no endpoint, or an amazonaws.com one)."""
        return is_aws_endpoint(self.endpoint_url)

    @property
    def express(self) -> bool:
        """A directory bucket (S3 Express One Zone): zonal endpoint, session credentials."""
        return is_directory_bucket(self.bucket)

    @property
    def path_style(self) -> bool:
        """``auto``: virtual-hosted on AWS unless the bucket has dots (TLS wildcard), else path.

        A directory bucket is virtual-hosted, but path-style behind an IP address (as the S3
        endpoint rules do for an endpoint override).
        """
        if self.express and self.addressing is Addressing.AUTO:
            host = urlsplit(self.endpoint_url).hostname or "" if self.endpoint_url else ""
            return re.fullmatch(r"[\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*", host) is not None
        if self.addressing is Addressing.AUTO:
            return not self.is_aws or "." in self.bucket
        return self.addressing is Addressing.PATH

    @property
    def base_url(self) -> str:
        """Scheme and authority the requests go to, without the bucket in the path."""
        if self.endpoint_url is not None:
            base = self.endpoint_url.rstrip("/")
        elif self.express:
            return zonal_endpoint(self.bucket, self.region)
        else:
            suffix = ".amazonaws.com.cn" if self.region.startswith("cn-") else ".amazonaws.com"
            base = f"https://s3.{self.region}{suffix}"
        if not self.path_style:
            scheme, _, host = base.partition("://")
            base = f"{scheme}://{self.bucket}.{host}"
        return base

    @property
    def store_id(self) -> StoreId:
        """This bucket's identity on its store (``StoreId``)."""
        return StoreId(self.base_url, self.bucket)


def is_aws_endpoint(endpoint: str | None) -> bool:
    """No endpoint (Amazon S3 by region), or an amazonaws.com one."""
    if endpoint is None:
        return True
    return (urlsplit(endpoint).hostname or "").endswith((".amazonaws.com", ".amazonaws.com.cn"))


def is_directory_bucket(bucket: str) -> bool:
    """Whether S3 treats this bucket name as a directory bucket's (``...--x-s3``)."""
    return bucket.endswith(DIRECTORY_SUFFIX)


def zone_id(bucket: str) -> str | None:
    """The Availability Zone ID in a directory bucket's name, as the S3 endpoint rules read it.

    None when the name is not one S3 can address: not a single DNS label of 3-63 lower-case
    letters, digits and hyphens, or no zone id of a known length after a ``--``.
    """
    if not is_directory_bucket(bucket) or not _HOST_LABEL.fullmatch(bucket) or _IPV4_LIKE.fullmatch(bucket):
        return None
    stem = bucket[: -len(DIRECTORY_SUFFIX)]
    for length in _ZONE_ID_LENGTHS:
        if len(stem) >= length + 2 and stem[-length - 2 : -length] == "--":
            return stem[-length:]
    return None


def zonal_endpoint(bucket: str, region: str) -> str:
    """``https://<bucket>.s3express-<zone id>.<region>.amazonaws.com`` (``.com.cn`` in China)."""
    zone = zone_id(bucket)
    if zone is None:
        raise ValueError(f"{bucket!r} is not a directory bucket name")
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"https://{bucket}.s3express-{zone}.{region}{suffix}"
