"""The AWS shared files: ``~/.aws/credentials`` and ``~/.aws/config``, read the way the SDKs do.

The credentials file has ``[name]`` sections; the config file has ``[profile name]`` (and a
bare ``[default]``). Paths come from ``AWS_SHARED_CREDENTIALS_FILE`` and ``AWS_CONFIG_FILE``;
the profile from the caller, else ``AWS_PROFILE``, else ``default``. Stdlib only, no I/O at
import; ``configparser`` is imported only when a file exists (most workers have none, and
every start looks for the profile's region).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import configparser

__all__ = ["config_path", "credentials_path", "has_profile", "profile_name", "profile_section"]


def credentials_path(environ: Mapping[str, str]) -> str:
    """Where the shared credentials file is."""
    return os.path.expanduser(environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")


def config_path(environ: Mapping[str, str]) -> str:
    """Where the shared config file is."""
    return os.path.expanduser(environ.get("AWS_CONFIG_FILE") or "~/.aws/config")


def profile_name(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The profile: the setting, else AWS_PROFILE, else 'default'."""
    return explicit or environ.get("AWS_PROFILE") or "default"


def _read(path: str) -> configparser.RawConfigParser | None:
    if not os.path.isfile(path):
        return None
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    return parser


def profile_section(profile: str, environ: Mapping[str, str], *, config_file: bool) -> dict[str, str]:
    """The key/value pairs of ``profile`` in the config or the credentials file ({} if none)."""
    if config_file:
        parser = _read(config_path(environ))
        names = [f"profile {profile}"] + (["default"] if profile == "default" else [profile])
    else:
        parser = _read(credentials_path(environ))
        names = [profile]
    if parser is None:
        return {}
    for name in names:
        if parser.has_section(name):
            return {k: v.strip() for k, v in parser.items(name)}
    return {}


def has_profile(profile: str, environ: Mapping[str, str]) -> bool:
    """Whether either file has a section for ``profile`` (even an empty one)."""
    creds = _read(credentials_path(environ))
    if creds is not None and creds.has_section(profile):
        return True
    config = _read(config_path(environ))
    names = [f"profile {profile}"] + (["default"] if profile == "default" else [])
    return config is not None and any(config.has_section(n) for n in names)
