"""The known options and the result-backend URL: keys, aliases, and what a URL says.

Every source of settings (``config``) names options by these keys or their aliases; a URL is
split here into raw options, not yet validated (``validation``), and masked for messages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from ..s3.errors import ConfigError
from .settings import SCHEME

__all__ = [
    "ALIASES",
    "EMPTY_ALLOWED",
    "canonical",
    "no_blank",
    "parse_url",
    "raw_slash_warning",
    "redact_url",
]

# Each known key, its aliases (URL parameters and legacy names), and what it means.
ALIASES: dict[str, tuple[str, ...]] = {
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
_CANONICAL = {alias: key for key, aliases in ALIASES.items() for alias in (key, *aliases)}
_SECRET_KEYS = frozenset({"secret_key", "session_token"})


def canonical(setting: str) -> str:
    """The known key an option or alias names; an unknown one is an error that guesses the intended one."""
    key = _CANONICAL.get(setting.strip().lower())
    if key is None:
        known = ", ".join(sorted(ALIASES))
        import difflib  # only for a mistyped option: a worker's start does not pay for it

        close = difflib.get_close_matches(setting.strip().lower(), _CANONICAL, n=1, cutoff=0.6)
        guess = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(setting, f"unknown option; {guess}known options are: {known}")
    return key


#: Options whose empty value means something: no prefix is the bucket's root.
EMPTY_ALLOWED = frozenset({"prefix"})


def no_blank(source: dict[str, Any]) -> dict[str, Any]:
    """Refuse an option given as an empty or blank string (``?region=``, ``?region=%20``).

    Dropping it would fall back to the next source or the default without a word (an empty
    region became us-east-1, even over AWS_REGION), and on AWS misroute every request.
    """
    for key, value in source.items():
        if isinstance(value, str) and not value.strip() and key not in EMPTY_ALLOWED:
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
    return no_blank(raw)


def _query_options(query: str) -> dict[str, Any]:
    """The URL's ``?key=value`` options under their canonical names; a key given twice is an error."""
    raw: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        canon = canonical(key)
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
