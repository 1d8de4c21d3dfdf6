"""One validated settings object, built in one place.

A result-backend URL, Celery's ``s3_*`` settings, s3result's own ``s3result_options`` dict,
the legacy celery-s3 ``CELERY_S3_BACKEND_SETTINGS`` dict and a few ``AWS_*`` environment
variables all become the same known keys (with aliases) and go through one ``build()``.
Every value is parsed there, every error quotes the setting and says what to do, and an
unknown key is an error, never silently ignored.

Precedence, highest first: the URL, ``s3result_options``, Celery's ``s3_*`` settings, the
legacy dict, the environment, the defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from .errors import ConfigError
from .settings import SCHEME, Addressing, ConditionalWrites, Settings
from .settings import is_aws_endpoint as _is_aws_endpoint

__all__ = [
    "Addressing",
    "ConditionalWrites",
    "Settings",
    "build",
    "from_celery_conf",
    "parse_url",
    "raw_slash_warning",
    "redact_url",
]

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

# Each known key, its aliases (URL parameters and legacy names), and what it means.
_ALIASES: dict[str, tuple[str, ...]] = {
    "bucket": ("s3_bucket",),
    "prefix": ("base_path", "s3_base_path"),
    "endpoint_url": ("endpoint", "s3_endpoint_url"),
    "region": ("aws_region", "region_name", "s3_region"),
    "access_key": ("access_key_id", "aws_access_key_id", "s3_access_key_id"),
    "secret_key": ("secret_access_key", "aws_secret_access_key", "s3_secret_access_key"),
    "session_token": ("aws_session_token", "token"),
    "profile": ("aws_profile",),
    "addressing": ("addressing_style", "path_style"),
    "connect_timeout": (),
    "read_timeout": ("timeout",),
    "max_connections": ("pool_size", "max_pool_connections"),
    "max_attempts": ("retries",),
    "throttle_wait": (),
    "sse": ("server_side_encryption", "encrypt_key"),
    "sse_kms_key_id": ("kms_key_id",),
    "storage_class": ("reduced_redundancy",),
    "conditional_writes": (),
    "max_result_size": (),
    "ca_bundle": ("verify",),
    "poll_initial_delay": (),
    "session_mode": ("create_session_mode",),
    "notify": (),
}
_CANONICAL = {alias: key for key, aliases in _ALIASES.items() for alias in (key, *aliases)}
_SECRET_KEYS = frozenset({"secret_key", "session_token"})


def _parse_bool(setting: str, value: Any) -> bool:
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
        raise ConfigError(setting, f"expected a {kind.__name__}, got {value!r}") from None
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


def _canonical(setting: str) -> str:
    key = _CANONICAL.get(setting.strip().lower())
    if key is None:
        known = ", ".join(sorted(_ALIASES))
        import difflib  # only for a mistyped option: a worker's start does not pay for it

        close = difflib.get_close_matches(setting.strip().lower(), _CANONICAL, n=1, cutoff=0.6)
        guess = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(setting, f"unknown option; {guess}known options are: {known}")
    return key


#: Options whose empty value means something: no prefix is the bucket's root.
_EMPTY_ALLOWED = frozenset({"prefix"})


def _no_blank(source: dict[str, Any]) -> dict[str, Any]:
    """Refuse an option given as an empty or blank string (``?region=``, ``?region=%20``).

    Dropping it would fall back to the next source or the default without a word (an empty
    region became us-east-1, even over AWS_REGION), and on AWS misroute every request.
    """
    for key, value in source.items():
        if isinstance(value, str) and not value.strip() and key not in _EMPTY_ALLOWED:
            raise ConfigError(key, f"is empty ({value!r}); give a value, or leave the option out")
    return source


_USERINFO_SAFE = ":%+=!$&'()*,;~-._"


def _split_userinfo(url: str) -> tuple[str, str, str]:
    """``(scheme://, userinfo, rest)``, tolerant of raw ``/``, ``?`` or ``@`` in a secret.

    AWS secrets often hold ``/`` and ``+``; users paste them unencoded, and ``urlsplit`` would
    then cut the authority at the ``/`` and expose half the secret as a path.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", url
    at = rest.rfind("@")
    if at < 0:
        return scheme + sep, "", rest
    return scheme + sep, rest[:at], rest[at + 1 :]


def raw_slash_warning(url: object) -> str | None:
    """The warning for a URL whose userinfo holds a raw ``/``, or None.

    s3result reads such a URL, but Celery's own masking (kombu's ``maybe_sanitize_url``, used by
    ``celery report`` and the worker's banner) cannot parse it and prints it whole, secret included.
    """
    if not isinstance(url, str):
        return None
    _, userinfo, _ = _split_userinfo(url.strip())
    if "/" not in userinfo:
        return None
    return (
        "the secret in result_backend holds a raw '/': Celery cannot mask such a URL (celery report would "
        "print the secret); percent-encode it as %2F (and '+' as %2B), or move the keys to AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY"
    )


def redact_url(url: str) -> str:
    """Mask a URL's userinfo entirely, access key ID included (and secret query parameters)."""
    head, userinfo, rest = _split_userinfo(url)
    if userinfo:
        rest = f"***@{rest}"
    path, qmark, query = rest.partition("?")
    if query:
        pairs = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            secret = _CANONICAL.get(k.lower()) in _SECRET_KEYS
            pairs.append(f"{k}={'***' if secret else v}")
        query = "&".join(pairs)
    return f"{head}{path}{qmark}{query}"


def parse_url(url: str) -> dict[str, Any]:
    """Split a result-backend URL into raw options (not yet validated).

    ``s3result://[KEY:SECRET@]BUCKET[/PREFIX][?opts]`` is AWS; ``[s3result+]http(s)://
    [KEY:SECRET@]HOST[:PORT]/BUCKET[/PREFIX][?opts]`` is any S3-compatible endpoint.
    """
    text = url.strip()
    if text.startswith(f"{SCHEME}+"):
        text = text[len(SCHEME) + 1 :]
    head, userinfo, rest = _split_userinfo(text)
    if userinfo:
        # Percent-encode what would otherwise end the userinfo early; '%' stays as typed.
        text = f"{head}{quote(userinfo, safe=_USERINFO_SAFE)}@{rest}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError("result_backend", f"{redact_url(url)!r} is not a valid URL") from None
    if parts.fragment:
        raise ConfigError("result_backend", "a '#' in the URL starts a fragment; percent-encode it as %23")
    raw = _query_options(parts.query)
    raw.update(_url_keys(parts))
    path = unquote(parts.path)
    if parts.scheme == SCHEME:
        raw.update(_aws_location(parts, port, path))
    elif parts.scheme in ("http", "https"):
        raw.update(_endpoint_location(parts, path, url))
    elif parts.scheme == "s3":
        raise ConfigError(
            "result_backend",
            "s3:// is Celery's built-in boto3 backend (a worker given it says 'Missing bucket name'); "
            "s3result's scheme is s3result://BUCKET/PREFIX",
        )
    else:
        raise ConfigError(
            "result_backend", f"unsupported scheme {parts.scheme!r}; use s3result:// or s3result+https://"
        )
    return _no_blank(raw)


def _query_options(query: str) -> dict[str, Any]:
    """The URL's ``?key=value`` options under their canonical names; a key given twice is an error."""
    raw: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        canon = _canonical(key)
        if canon in raw:
            raise ConfigError(key, "given twice in the URL; keep one")
        raw[canon] = value
    return raw


def _url_keys(parts: SplitResult) -> dict[str, Any]:
    """The ``KEY:SECRET@`` of the URL, if any: both or neither."""
    if parts.username is None:
        return {}
    if parts.password is None:
        raise ConfigError(
            "result_backend",
            "the URL has an access key but no secret; use KEY:SECRET@ and percent-encode '/' and '+' in the secret",
        )
    return {"access_key": unquote(parts.username), "secret_key": unquote(parts.password)}


def _aws_location(parts: SplitResult, port: int | None, path: str) -> dict[str, Any]:
    """``s3result://BUCKET/PREFIX``: the bucket and prefix on AWS."""
    raw: dict[str, Any] = {}
    if port is not None:
        raise ConfigError(
            "result_backend",
            "s3result:// takes a bucket, not host:port; use s3result+https://HOST:PORT/BUCKET for other stores",
        )
    if parts.hostname:
        # urlsplit lower-cases the host; take the bucket as written so the check can see it.
        raw["bucket"] = parts.netloc.rpartition("@")[2]
    if path.strip("/"):
        raw["prefix"] = path
    return raw


def _endpoint_location(parts: SplitResult, path: str, url: str) -> dict[str, Any]:
    """``http(s)://HOST[:PORT]/BUCKET/PREFIX``: an S3-compatible endpoint, its bucket and prefix."""
    if not parts.hostname:
        raise ConfigError(
            "result_backend", f"{redact_url(url)!r} has no host; use s3result+https://HOST[:PORT]/BUCKET/PREFIX"
        )
    host = parts.netloc.rpartition("@")[2]
    raw: dict[str, Any] = {"endpoint_url": f"{parts.scheme}://{host}"}
    bucket, _, prefix = path.lstrip("/").partition("/")
    if bucket:
        raw["bucket"] = bucket
    if prefix.strip("/"):
        raw["prefix"] = prefix
    return raw


def _from_mapping(source: str, mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(source, f"expected a dict, got {type(mapping).__name__}")
    raw: dict[str, Any] = {}
    for key, value in mapping.items():
        if value is None:
            continue
        canon = _canonical(f"{key}")
        if canon == "storage_class" and key == "reduced_redundancy":
            if _parse_bool(f"{source}[reduced_redundancy]", value):
                raw[canon] = "REDUCED_REDUNDANCY"
            continue
        if canon == "sse" and key == "encrypt_key":
            if _parse_bool(f"{source}[encrypt_key]", value):
                raw[canon] = "AES256"
            continue
        raw[canon] = value
    return _no_blank(raw)


_CELERY_SETTINGS = {
    "s3_bucket": "bucket",
    "s3_base_path": "prefix",
    "s3_endpoint_url": "endpoint_url",
    "s3_region": "region",
    "s3_access_key_id": "access_key",
    "s3_secret_access_key": "secret_key",
}


def _from_celery_settings(conf: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, key in _CELERY_SETTINGS.items():
        value = conf.get(name)
        if isinstance(value, str) and not value.strip():
            if key in _EMPTY_ALLOWED or not value:
                continue  # s3_base_path "" is the bucket's root; "" is how some configs say unset
            raise ConfigError(name, f"is blank ({value!r}); give a value, or leave the setting out")
        if value is not None:
            raw[key] = value
    return raw


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        raw["endpoint_url"] = endpoint
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        raw["region"] = region
    return raw


def build(
    *,
    url: str | None = None,
    options: Mapping[str, Any] | None = None,
    celery_settings: Mapping[str, Any] | None = None,
    legacy: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every source, validate every value once, and return frozen ``Settings``."""
    env = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = [
        _from_environ(env),
        _from_mapping("CELERY_S3_BACKEND_SETTINGS", legacy),
        _from_celery_settings(celery_settings or {}),
        _from_mapping("s3result_options", options),
        parse_url(url) if url else {},
    ]
    raw: dict[str, Any] = {}
    for layer in layers:
        raw.update({k: v for k, v in layer.items() if v is not None})
    if "region" not in raw:
        # Last before the default, as in the SDKs: the profile's region in ~/.aws/config.
        from .s3.credentials import awsfiles

        profile = awsfiles.profile_name(str(raw["profile"]) if raw.get("profile") else None, env)
        region = awsfiles.profile_section(profile, env, config_file=True).get("region")
        if region:
            raw["region"] = region
    try:
        settings = _validate(raw)
    except ConfigError as exc:
        raise _named_by_origin(exc, layers, env) from None
    origin = _secret_origin(layers)
    return replace(settings, secret_origin=origin) if origin and settings.secret_key else settings


def _secret_origin(layers: list[dict[str, Any]], key: str = "secret_key") -> str | None:
    """Which of ``build``'s layers gave the value of ``key`` that won (the last one that has it)."""
    names = ("the environment", "CELERY_S3_BACKEND_SETTINGS", "Celery's s3_* settings", "s3result_options", "")
    found = None
    for name, layer in zip(names, layers, strict=True):
        if layer.get(key) is not None:
            found = name or "the result_backend URL"
    if found == "Celery's s3_* settings":
        found = next((name for name, k in _CELERY_SETTINGS.items() if k == key), found)
    return found


def _named_by_origin(exc: ConfigError, layers: list[dict[str, Any]], env: Mapping[str, str]) -> ConfigError:
    """The same error, saying where a credential or an environment value came from.

    A secret can be given in four places and an endpoint by two variables: "secret_key" alone
    does not say which one to fix.
    """
    where = _secret_origin(layers, exc.setting)
    if exc.setting not in ("access_key", "secret_key", "session_token") and where != "the environment":
        return exc
    if where == "the environment":  # _from_environ: the endpoint and the region
        names = {
            "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        }
        where = next((n for n in names.get(exc.setting, ()) if env.get(n)), where)
    if where is None:
        return exc
    return ConfigError(exc.setting, f"from {where}: {exc.detail}")


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    text = str(value).strip()
    if text != str(value) and key in ("access_key", "secret_key", "session_token"):
        raise ConfigError(key, "has leading or trailing whitespace; remove it")
    return text or None


def _validate(raw: Mapping[str, Any]) -> Settings:
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
        notify=_parse_bool("notify", raw.get("notify", True)),
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
    from .s3.config import zone_id

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


def from_celery_conf(conf: Mapping[str, Any], url: str | None) -> Settings:
    """Build settings from a Celery app's configuration and its result-backend URL."""
    return build(
        url=url,
        options=conf.get("s3result_options"),
        celery_settings={k: conf.get(k) for k in _CELERY_SETTINGS},
        legacy=conf.get("CELERY_S3_BACKEND_SETTINGS"),
    )
