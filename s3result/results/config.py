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
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..s3.errors import ConfigError
from .options import EMPTY_ALLOWED, canonical, no_blank, parse_url, raw_slash_warning, redact_url
from .settings import Addressing, ConditionalWrites, Settings
from .validation import parse_bool, validate

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


def _from_mapping(source: str, mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(source, f"expected a dict, got {type(mapping).__name__}")
    raw: dict[str, Any] = {}
    for key, value in mapping.items():
        if value is None:
            continue
        canon = canonical(f"{key}")
        if canon == "storage_class" and key == "reduced_redundancy":
            if parse_bool(f"{source}[reduced_redundancy]", value):
                raw[canon] = "REDUCED_REDUNDANCY"
            continue
        if canon == "sse" and key == "encrypt_key":
            if parse_bool(f"{source}[encrypt_key]", value):
                raw[canon] = "AES256"
            continue
        raw[canon] = value
    return no_blank(raw)


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
            if key in EMPTY_ALLOWED or not value:
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
        from ..s3.credentials import awsfiles

        profile = awsfiles.profile_name(str(raw["profile"]) if raw.get("profile") else None, env)
        region = awsfiles.profile_section(profile, env, config_file=True).get("region")
        if region:
            raw["region"] = region
    try:
        settings = validate(raw)
    except ConfigError as exc:
        raise _named_by_origin(exc, layers, env) from None
    origin = _secret_origin(layers)
    if origin and settings.secret_key:
        settings = replace(settings, secret_origin=origin)
    if settings.endpoint_url:
        settings = replace(settings, endpoint_origin=_origin_named(layers, "endpoint_url", env))
    return settings


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
    where = _origin_named(layers, exc.setting, env)
    if exc.setting not in ("access_key", "secret_key", "session_token") and where not in _ENV_NAMES.get(
        exc.setting, ()
    ):
        return exc
    if where is None:
        return exc
    return ConfigError(exc.setting, f"from {where}: {exc.detail}")


#: The variables ``_from_environ`` reads, in the order it prefers them.
_ENV_NAMES = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
}


def _origin_named(layers: list[dict[str, Any]], key: str, env: Mapping[str, str]) -> str | None:
    """``_secret_origin``, with "the environment" narrowed to the variable that gave the value."""
    where = _secret_origin(layers, key)
    if where == "the environment":
        where = next((n for n in _ENV_NAMES.get(key, ()) if env.get(n)), where)
    return where


def from_celery_conf(conf: Mapping[str, Any], url: str | None) -> Settings:
    """Build settings from a Celery app's configuration and its result-backend URL.

    A setting named ``s3result_...`` that is not ``s3result_options`` is a typo of it (Celery
    accepts any name and nobody would read it): an error, not options silently left out.
    """
    for name in conf:
        if isinstance(name, str) and name.startswith("s3result_") and name != "s3result_options":
            raise ConfigError(
                name, "not a setting s3result reads; did you mean s3result_options (a dict of the options)?"
            )
    return build(
        url=url,
        options=conf.get("s3result_options"),
        celery_settings={k: conf.get(k) for k in _CELERY_SETTINGS},
        legacy=conf.get("CELERY_S3_BACKEND_SETTINGS"),
    )
