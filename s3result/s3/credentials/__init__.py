"""Credentials without boto: the value type, the provider chain, and the AWS shared files.

``base`` holds ``Credentials`` and the providers that need no I/O; ``providers`` the ones
that reach a file, a process or an endpoint (imported only when static keys are absent);
``chain`` runs them in the AWS SDK order and refreshes before expiry (``chain_for``, here, lines them
up and hands the HTTP ones their one-shot transport); ``awsfiles`` reads
``~/.aws/credentials`` and ``~/.aws/config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import Credentials, EnvProvider, Provider, StaticProvider
from .chain import ADVISORY_REFRESH, MANDATORY_REFRESH, CredentialSource

if TYPE_CHECKING:
    from ..config import S3Config

__all__ = [
    "ADVISORY_REFRESH",
    "CredentialSource",
    "Credentials",
    "EnvProvider",
    "MANDATORY_REFRESH",
    "Provider",
    "StaticProvider",
    "chain_for",
]


def chain_for(config: S3Config, environ: Mapping[str, str] | None = None) -> CredentialSource:
    """The AWS SDK provider chain for this configuration.

    Settings, environment, web identity, shared files, credential_process, container, IMDS;
    as in botocore, an explicitly configured profile skips the environment variables.
    """
    static = StaticProvider(config.access_key, config.secret_key, config.session_token)
    if static():
        # Static keys always answer first, so the rest of the chain would never be asked;
        # not building it keeps http.client and friends out of a cold start.
        return CredentialSource([static])
    # Imported here: static keys (the common case) need no endpoint, no transport, no parser.
    from ..transport import one_shot
    from .providers import (
        ContainerProvider,
        IMDSProvider,
        ProcessProvider,
        SharedFilesProvider,
        WebIdentityProvider,
    )

    env = os.environ if environ is None else environ
    providers: list[Provider] = [static]
    if not config.profile:
        providers.append(EnvProvider(env))
    providers += [
        WebIdentityProvider(env, request=one_shot),
        SharedFilesProvider(config.profile, env),
        ProcessProvider(config.profile, env),
        ContainerProvider(env, request=one_shot),
        IMDSProvider(env, request=one_shot),
    ]
    if not config.profile:
        return CredentialSource(providers)
    from . import awsfiles

    # An explicit profile skips AWS_ACCESS_KEY_ID: never advise what this chain ignores.
    none_found = (
        (
            f"no S3 credentials found for profile {config.profile!r} (tried: {{tried}}): give [{config.profile}] "
            f"aws_access_key_id and aws_secret_access_key in {awsfiles.credentials_path(env)}, or credential_process "
            f"in {awsfiles.config_path(env)}; or drop profile= and put the keys in result_backend or "
            "s3_access_key_id / s3_secret_access_key"
        )
        .replace("{", "{{")
        .replace("}", "}}")
        .replace("{{tried}}", "{tried}")
    )
    return CredentialSource(providers, none_found=none_found)
