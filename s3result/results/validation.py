"""Every option's value parsed and checked once, into frozen ``Settings``.

``config.build`` merges the sources into raw options (known keys, see ``options``); this step
parses each value, quotes the offending one in a ``ConfigError`` naming the setting and the fix,
and checks the combinations (a key pair, virtual-hosted addressing, a directory bucket).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..s3.errors import ConfigError
from .options import redact_url
from .settings import Addressing, ConditionalWrites, Settings
from .settings import is_aws_endpoint as _is_aws_endpoint

__all__ = ["parse_bool", "validate"]

_TRUE = frozenset({"1", "true", "on", "yes", "y"})
_FALSE = frozenset({"0", "false", "off", "no", "n"})


_SSE = ("AES256", "aws:kms", "aws:kms:dsse")
_STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)


def parse_bool(setting: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(setting, f"expected a boolean (true/false, yes/no, on/off, 1/0), got {value!r}")


def _parse_number(setting: str, value: Any, kind: type[int] | type[float], low: float, high: float) -> Any:
    try:
        number = kind(str(value).strip()) if not isinstance(value, (int, float)) or isinstance(value, bool) else value
        if isinstance(value, bool):
            raise ValueError
        number = kind(number)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number of seconds"
        raise ConfigError(setting, f"expected {what} from {low:g} to {high:g}, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(setting, f"must be between {low:g} and {high:g}, got {value!r}")
    return number


def _parse_size(setting: str, value: Any) -> int:
    text = str(value).strip().upper()
    match = re.fullmatch(r"(\d+)\s*(B|K|KB|KIB|M|MB|MIB|G|GB|GIB)?", text)
    if not match:
        raise ConfigError(setting, f"expected a size such as 10485760, 512KiB or 16MiB, got {value!r}")
    unit = (match.group(2) or "B")[0]
    size = int(match.group(1)) * {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]
    if size < 1:
        raise ConfigError(setting, f"must be at least 1 byte, got {value!r}")
    return size


def _check_bucket(bucket: str, *, strict: bool) -> str:
    """AWS naming rules on AWS; other stores also accept legacy upper-case and underscores."""
    setting = "bucket"
    if not bucket:
        raise ConfigError(setting, "no bucket given; use s3result://BUCKET/PREFIX or set s3_bucket")
    if strict:
        ok = 3 <= len(bucket) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", bucket) is not None
    else:
        ok = 3 <= len(bucket) <= 255 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]", bucket) is not None
    if ok and (".." in bucket or ".-" in bucket or "-." in bucket):
        ok = False
    if ok and re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", bucket):
        ok = False  # formatted like an IP address: AWS forbids it
    if not ok:
        rule = (
            "3-63 lower-case letters, digits, dots and hyphens"
            if strict
            else "3-255 letters, digits, dots, hyphens and underscores"
        )
        raise ConfigError(
            setting, f"{bucket!r} is not a valid bucket name ({rule}, starting and ending with a letter or digit)"
        )
    return bucket


def _check_prefix(prefix: str) -> str:
    clean = prefix.strip("/")
    if "//" in clean:
        raise ConfigError("prefix", f"{prefix!r} has an empty path segment ('//'); remove it")
    if len(clean.encode("utf-8")) > 900:
        raise ConfigError(
            "prefix", f"{prefix[:40]!r}... is too long; S3 keys hold 1024 bytes and the result key needs room"
        )
    return clean


def _check_endpoint(url: str) -> str:
    parts = urlsplit(url)
    if "://" not in url:
        raise ConfigError("endpoint_url", f"{redact_url(url)!r} has no scheme; write https://{url} (or http://)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("endpoint_url", f"{redact_url(url)!r} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ConfigError("endpoint_url", "must not hold credentials; pass them as access_key/secret_key")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(
            "endpoint_url",
            f"{redact_url(url)!r} must be just scheme://host[:port]; put the bucket in the bucket setting",
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError("endpoint_url", f"{redact_url(url)!r} has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}"


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    text = str(value).strip()
    if text != str(value) and key in ("access_key", "secret_key", "session_token"):
        raise ConfigError(key, "has leading or trailing whitespace; remove it")
    return text or None


def validate(raw: Mapping[str, Any]) -> Settings:
    """Parse and check every value of the merged options, in a fixed order: frozen ``Settings``."""
    endpoint = _opt_str(raw, "endpoint_url")
    endpoint = _check_endpoint(endpoint) if endpoint else None
    is_aws = _is_aws_endpoint(endpoint)
    bucket = _check_bucket(str(raw.get("bucket") or "").strip(), strict=is_aws)
    region = _check_region(raw)
    access_key, secret_key = _check_key_pair(raw)
    addressing = _parse_addressing(raw, endpoint)
    sse, kms = _parse_sse(raw)
    storage_class = _parse_storage_class(raw)
    conditional = _parse_conditional_writes(raw)
    ca_bundle = _check_ca_bundle(raw)
    session_mode = _parse_session_mode(raw)
    if bucket.endswith("--x-s3") and endpoint is None:
        _check_directory_bucket(bucket, addressing)
    return Settings(
        bucket=bucket,
        prefix=_check_prefix(str(raw.get("prefix") or "")),
        endpoint_url=endpoint,
        region=region,
        access_key=access_key,
        secret_key=secret_key,
        session_token=_opt_str(raw, "session_token"),
        profile=_opt_str(raw, "profile"),
        addressing=addressing,
        connect_timeout=_parse_number("connect_timeout", raw.get("connect_timeout", 5.0), float, 0.01, 600),
        read_timeout=_parse_number("read_timeout", raw.get("read_timeout", 30.0), float, 0.01, 3600),
        max_connections=_parse_number("max_connections", raw.get("max_connections", 32), int, 1, 1024),
        max_attempts=_parse_number("max_attempts", raw.get("max_attempts", 3), int, 1, 20),
        throttle_wait=_parse_number("throttle_wait", raw.get("throttle_wait", 60.0), float, 0, 3600),
        sse=sse,
        sse_kms_key_id=kms,
        storage_class=storage_class,
        conditional_writes=conditional,
        max_result_size=_parse_size("max_result_size", raw.get("max_result_size", 64 * 1024 * 1024)),
        ca_bundle=ca_bundle,
        poll_initial_delay=_parse_poll_delay(raw.get("poll_initial_delay", 0.025)),
        notify=parse_bool("notify", raw.get("notify", True)),
        session_mode=session_mode,
    )


def _check_region(raw: Mapping[str, Any]) -> str:
    region = _opt_str(raw, "region") or "us-east-1"
    if not re.fullmatch(r"[a-z0-9-]{1,40}", region):
        raise ConfigError("region", f"{region!r} is not a region name such as eu-west-1 (or 'auto' for R2)")
    return region


def _check_key_pair(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """An access key and a secret key go together: both or neither."""
    access_key, secret_key = _opt_str(raw, "access_key"), _opt_str(raw, "secret_key")
    if bool(access_key) != bool(secret_key):
        missing, alias = ("secret_key", "s3_secret_access_key") if access_key else ("access_key", "s3_access_key_id")
        raise ConfigError(
            missing,
            f"missing (also settable as {alias}): an access key and a secret key go together; set both or neither",
        )
    return access_key, secret_key


def _parse_addressing(raw: Mapping[str, Any], endpoint: str | None) -> Addressing:
    """auto, path or virtual (or path_style's booleans); virtual needs a DNS name."""
    addressing_raw = raw.get("addressing", "auto")
    if isinstance(addressing_raw, bool):
        addressing = Addressing.PATH if addressing_raw else Addressing.VIRTUAL
    else:
        text = str(addressing_raw).strip().lower()
        text = {"virtual-hosted": "virtual", "virtual_hosted": "virtual", "vhost": "virtual"}.get(text, text)
        if text in _TRUE | _FALSE:  # path_style=true/false
            addressing = Addressing.PATH if text in _TRUE else Addressing.VIRTUAL
        else:
            try:
                addressing = Addressing(text)
            except ValueError:
                raise ConfigError("addressing", f"expected auto, path or virtual, got {addressing_raw!r}") from None
    if (
        addressing is Addressing.VIRTUAL
        and endpoint is not None
        and re.fullmatch(r"[\d.]+|\[.*\]|localhost", urlsplit(endpoint).hostname or "")
    ):
        raise ConfigError(
            "addressing",
            "virtual-hosted addressing needs a DNS name, not an IP address or localhost; use addressing=path",
        )
    return addressing


def _parse_sse(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The encryption mode, spelled as S3 wants it, and the KMS key id that only aws:kms takes."""
    sse = _opt_str(raw, "sse")
    if sse is not None:
        match = {s.lower(): s for s in _SSE}.get(sse.lower())
        if match is None:
            raise ConfigError("sse", f"expected AES256 or aws:kms, got {sse!r}")
        sse = match
    kms = _opt_str(raw, "sse_kms_key_id")
    if kms and sse not in ("aws:kms", "aws:kms:dsse"):
        raise ConfigError("sse_kms_key_id", "is only meaningful with sse=aws:kms; set sse=aws:kms or drop the key id")
    return sse, kms


def _parse_storage_class(raw: Mapping[str, Any]) -> str | None:
    storage_class = _opt_str(raw, "storage_class")
    if storage_class is not None:
        storage_class = storage_class.upper()
        if storage_class not in _STORAGE_CLASSES:
            raise ConfigError("storage_class", f"expected one of {', '.join(_STORAGE_CLASSES)}, got {storage_class!r}")
    return storage_class


def _parse_conditional_writes(raw: Mapping[str, Any]) -> ConditionalWrites:
    cw_raw = str(raw.get("conditional_writes", "probe")).strip().lower()
    try:
        return ConditionalWrites(cw_raw)
    except ValueError:
        raise ConfigError(
            "conditional_writes", f"expected probe, etag or disabled, got {raw.get('conditional_writes')!r}"
        ) from None


def _check_ca_bundle(raw: Mapping[str, Any]) -> str | None:
    ca_bundle = _opt_str(raw, "ca_bundle")
    if ca_bundle is not None and ca_bundle.lower() not in _TRUE | _FALSE and not os.path.isfile(ca_bundle):
        raise ConfigError(
            "ca_bundle",
            f"{ca_bundle!r} is not a file; give the path of a PEM CA bundle (or false to skip verification)",
        )
    return ca_bundle


def _parse_session_mode(raw: Mapping[str, Any]) -> str | None:
    session_mode = _opt_str(raw, "session_mode")
    if session_mode is not None:
        session_mode = {"readwrite": "ReadWrite", "readonly": "ReadOnly"}.get(session_mode.lower().replace("-", ""))
        if session_mode is None:
            raise ConfigError("session_mode", f"expected ReadWrite or ReadOnly, got {raw.get('session_mode')!r}")
    return session_mode


def _check_directory_bucket(bucket: str, addressing: Addressing) -> None:
    """A directory bucket on AWS: a name S3 can route to a zone, and virtual-hosted addressing."""
    from ..s3.config import zone_id

    if zone_id(bucket) is None:
        raise ConfigError(
            "bucket",
            f"{bucket!r} ends in --x-s3 but is not a directory bucket name S3 can route: use "
            "NAME--ZONEID--x-s3 with an Availability Zone ID such as usw2-az1 (lower-case letters, digits, hyphens)",
        )
    if addressing is Addressing.PATH:
        raise ConfigError("addressing", "directory buckets (--x-s3) are virtual-hosted only; drop addressing=path")


_FIXED_POLLING = frozenset({"off", "fixed", "none", "false", "no"})


def _parse_poll_delay(value: Any) -> float | None:
    """Seconds (0.001 to 60), or ``off``/``fixed`` for Celery's poll-every-interval loop."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _FIXED_POLLING):
        return None
    try:
        delay: float = _parse_number("poll_initial_delay", value, float, 0.001, 60)
    except ConfigError:
        raise ConfigError(
            "poll_initial_delay",
            f"expected seconds between 0.001 and 60 (say 0.025), or off for fixed polling, got {value!r}",
        ) from None
    return delay
