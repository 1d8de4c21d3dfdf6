"""Credentials without boto: the value type, the provider chain, and the AWS shared files.

``base`` holds ``Credentials`` and the providers that need no I/O; ``providers`` the ones
that reach a file, a process or an endpoint (imported only when static keys are absent);
``chain`` runs them in the AWS SDK order and refreshes before expiry; ``awsfiles`` reads
``~/.aws/credentials`` and ``~/.aws/config``.
"""

from __future__ import annotations

from .base import Credentials, EnvProvider, Provider, StaticProvider
from .chain import ADVISORY_REFRESH, MANDATORY_REFRESH, CredentialSource, chain_for

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
