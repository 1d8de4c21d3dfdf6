"""Credential providers beyond static settings and the environment, in the AWS SDK order.

Each provider is a callable returning ``Credentials`` (with an expiry when they are
temporary) or ``None`` when it has nothing to offer, so the chain moves on. A provider that
is configured but broken (a web-identity token file that is missing, a container endpoint
that answers garbage) raises one ``CredentialsError`` line that says what to fix. Calling a
provider again is how its credentials are refreshed. Stdlib HTTP only: these calls are rare.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import re
import shlex
import subprocess
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from ..errors import CredentialsError, TransportError
from ..retry import RetryConfig, retry_call
from . import awsfiles
from .base import Credentials

__all__ = [
    "ContainerProvider",
    "IMDSProvider",
    "OneShot",
    "ProcessProvider",
    "SharedFilesProvider",
    "WebIdentityProvider",
    "parse_expiry",
]

logger = logging.getLogger(__name__)

_CONTAINER_HOST = "169.254.170.2"
_CONTAINER_ALLOWED = {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}
_IMDS = "http://169.254.169.254"


def parse_expiry(text: str) -> float:
    """ISO 8601 (``2026-11-24T10:00:00Z``) to UNIX time."""
    value = text.strip().replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


class OneShot(Protocol):
    """One request to a credentials endpoint over a fresh connection (``transport.one_shot``).

    Given by the chain (``chain_for``), not imported: the providers stay below the transports.
    """

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float,
    ) -> tuple[int, bytes]: ...


class _Unanswered(Exception):
    """A fetch that got no credentials; ``transient`` when another try may get them."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def _from_json(data: bytes, source: str, *, token_field: str = "Token") -> Credentials:
    try:
        doc = json.loads(data)
        return Credentials(
            doc["AccessKeyId"],
            doc["SecretAccessKey"],
            doc.get(token_field) or doc.get("SessionToken") or None,
            expiry=parse_expiry(doc["Expiration"]) if doc.get("Expiration") else None,
            source=source,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(
            f"{source}: the answer is not a credentials document ({type(exc).__name__}: {exc})"
        ) from None


class WebIdentityProvider:
    """EKS IRSA: ``AssumeRoleWithWebIdentity`` (unsigned) with the token file, re-read each time."""

    name = "web-identity"

    def __init__(self, environ: Mapping[str, str], *, request: OneShot, timeout: float = 10.0) -> None:
        self._env = environ
        self._request = request
        self._timeout = timeout

    def endpoint(self) -> str:
        """The regional STS endpoint, or AWS_ENDPOINT_URL_STS."""
        if self._env.get("AWS_ENDPOINT_URL_STS"):
            return self._env["AWS_ENDPOINT_URL_STS"].rstrip("/")
        region = self._env.get("AWS_REGION") or self._env.get("AWS_DEFAULT_REGION")
        return f"https://sts.{region}.amazonaws.com" if region else "https://sts.amazonaws.com"

    def __call__(self) -> Credentials | None:
        token_file, role = self._env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), self._env.get("AWS_ROLE_ARN")
        if not token_file or not role:
            return None
        try:
            with open(token_file) as f:
                token = f.read().strip()
        except OSError as exc:
            raise CredentialsError(f"web identity: cannot read AWS_WEB_IDENTITY_TOKEN_FILE ({exc.strerror})") from None
        params = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role,
            "RoleSessionName": self._env.get("AWS_ROLE_SESSION_NAME") or "s3result",
            "WebIdentityToken": token,
        }
        url = self.endpoint() + "/"
        try:
            status, data = self._request(
                "POST",
                url,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=urlencode(params).encode(),
                timeout=self._timeout,
            )
        except TransportError as exc:
            raise CredentialsError(f"web identity: cannot reach STS at {url} ({exc})") from None
        fields = dict(re.findall(rb"<(AccessKeyId|SecretAccessKey|SessionToken|Expiration)>([^<]+)</", data))
        if status != 200 or len(fields) < 3:
            code = re.search(rb"<Code>([^<]+)</Code>", data)
            reason = code.group(1).decode() if code else f"HTTP {status}"
            raise CredentialsError(f"web identity: AssumeRoleWithWebIdentity for {role} failed: {reason}")
        return Credentials(
            fields[b"AccessKeyId"].decode(),
            fields[b"SecretAccessKey"].decode(),
            fields.get(b"SessionToken", b"").decode() or None,
            expiry=parse_expiry(fields[b"Expiration"].decode()) if b"Expiration" in fields else None,
            source=self.name,
        )


class SharedFilesProvider:
    """``~/.aws/credentials``, then ``~/.aws/config`` keys, for the profile."""

    name = "shared-files"

    def __init__(self, profile: str | None, environ: Mapping[str, str]) -> None:
        self._profile = awsfiles.profile_name(profile, environ)
        self._env = environ
        #: Who asked for a profile by name: then a missing one is an error, as boto3's ProfileNotFound.
        self._named_by = (
            "profile= in the settings" if profile else ("AWS_PROFILE" if environ.get("AWS_PROFILE") else "")
        )

    def __call__(self) -> Credentials | None:
        if self._named_by and not awsfiles.has_profile(self._profile, self._env):
            raise CredentialsError(
                f"profile {self._profile!r} (from {self._named_by}) not found: no [{self._profile}] in "
                f"{awsfiles.credentials_path(self._env)} and no [profile {self._profile}] in "
                f"{awsfiles.config_path(self._env)}; add the profile there, or fix the name"
            )
        for config_file in (False, True):
            section = awsfiles.profile_section(self._profile, self._env, config_file=config_file)
            key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
            if key and secret:
                where = awsfiles.config_path(self._env) if config_file else awsfiles.credentials_path(self._env)
                return Credentials(
                    key,
                    secret,
                    section.get("aws_session_token") or None,
                    source=f"{self.name} ({where} [{self._profile}])",
                )
        return None


class ProcessProvider:
    """``credential_process`` in the profile: run it, read its JSON (Version 1)."""

    name = "credential_process"

    def __init__(self, profile: str | None, environ: Mapping[str, str], *, timeout: float = 60.0) -> None:
        self._profile = awsfiles.profile_name(profile, environ)
        self._env = environ
        self._timeout = timeout

    def __call__(self) -> Credentials | None:
        command = awsfiles.profile_section(self._profile, self._env, config_file=True).get("credential_process")
        if not command:
            return None
        try:
            done = subprocess.run(shlex.split(command), capture_output=True, timeout=self._timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialsError(f"credential_process of profile {self._profile!r} did not run: {exc}") from None
        if done.returncode != 0:
            raise CredentialsError(
                f"credential_process of profile {self._profile!r} exited with {done.returncode}; run it by hand to see why"
            )
        creds = _from_json(done.stdout, f"credential_process ([{self._profile}])", token_field="SessionToken")
        return creds


def _container_url(environ: Mapping[str, str]) -> str | None:
    """The container endpoint's URL, checked as it will be connected to (botocore's rules).

    The token goes to whatever host the URL names, so the check parses the URL once built:
    a relative URI such as ``@127.0.0.1:8080/x`` would otherwise turn the fixed host into
    userinfo and send the token elsewhere. botocore: ``ContainerMetadataFetcher``.
    """
    relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative:
        url = f"http://{_CONTAINER_HOST}{relative}"
        parts = urlsplit(url)
        if not relative.startswith("/") or parts.netloc != _CONTAINER_HOST:
            raise CredentialsError(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting with '/' "
                f"(it is appended to http://{_CONTAINER_HOST}); got {relative[:60]!r}"
            )
        return url
    full = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not full:
        return None
    parts = urlsplit(full)
    try:
        host = (parts.hostname or "").strip("[]")
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise CredentialsError(f"AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL ({exc})") from exc
    if parts.scheme == "https" and host:
        return full
    allowed = host in _CONTAINER_ALLOWED or host == "localhost"
    try:
        allowed = allowed or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if parts.scheme != "http" or not allowed:
        raise CredentialsError(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to loopback, 169.254.170.2, "
            f"169.254.170.23 or [fd00:ec2::23]; got {parts.scheme or 'no'} scheme and host {host!r}"
        )
    return full


class ContainerProvider:
    """ECS task roles and EKS Pod Identity: the container credentials endpoint."""

    name = "container"

    def __init__(
        self, environ: Mapping[str, str], *, request: OneShot, timeout: float = 2.0, attempts: int = 3
    ) -> None:
        self._env = environ
        self._request = request
        self._timeout = timeout
        self._retry = RetryConfig(max_attempts=attempts)

    def _authorization(self) -> str | None:
        token_file = self._env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            try:
                with open(token_file) as f:  # re-read on every fetch: EKS rotates it
                    token = f.read().strip()
            except OSError as exc:
                raise CredentialsError(
                    f"container: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ({exc.strerror})"
                ) from None
        else:
            token = self._env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") or ""
        if "\r" in token or "\n" in token:
            raise CredentialsError(
                "container: the authorization token holds a CR or LF; refusing to send it as a header"
            )
        return token or None

    def __call__(self) -> Credentials | None:
        url = _container_url(self._env)
        if url is None:
            return None
        token = self._authorization()
        headers = {"Accept": "application/json", **({"Authorization": token} if token else {})}

        def fetch() -> Credentials:
            try:
                status, data = self._request("GET", url, headers=headers, timeout=self._timeout)
            except TransportError as exc:
                raise _Unanswered(f"unreachable ({exc})", transient=True) from None
            if status != 200:
                raise _Unanswered(f"HTTP {status}", transient=status >= 500)
            return _from_json(data, self.name)

        try:
            return retry_call(
                fetch,
                config=self._retry,
                retryable=lambda exc: isinstance(exc, _Unanswered) and exc.transient,
                what="the container credentials endpoint",
            )
        except _Unanswered as exc:
            raise CredentialsError(f"container credentials endpoint {urlsplit(url).netloc}: {exc}") from None


class IMDSProvider:
    """EC2 instance metadata: IMDSv2 (token), with IMDSv1 only when the token PUT is refused."""

    name = "imds"

    def __init__(self, environ: Mapping[str, str], *, request: OneShot, timeout: float = 1.0) -> None:
        self._env = environ
        self._request = request
        self._timeout = float(environ.get("AWS_METADATA_SERVICE_TIMEOUT") or timeout)
        self._base = (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or _IMDS).rstrip("/")

    def _disabled(self, name: str) -> bool:
        return (self._env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")

    def __call__(self) -> Credentials | None:
        if self._disabled("AWS_EC2_METADATA_DISABLED"):
            return None
        try:
            return self._fetch()
        except TransportError as exc:
            logger.debug("s3result: instance metadata unavailable (%s)", exc)
            return None

    def _fetch(self) -> Credentials | None:
        headers: dict[str, str] = {}
        status, token = self._request(
            "PUT",
            f"{self._base}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            timeout=self._timeout,
        )
        if status == 200:
            headers["X-aws-ec2-metadata-token"] = token.decode().strip()
        elif status in (400, 403, 404, 405) and not self._disabled("AWS_EC2_METADATA_V1_DISABLED"):
            logger.debug("s3result: IMDSv2 token refused (%s); trying IMDSv1", status)
        else:
            logger.debug("s3result: IMDS token request answered %s; not using instance metadata", status)
            return None
        base = f"{self._base}/latest/meta-data/iam/security-credentials/"
        status, names = self._request("GET", base, headers=headers, timeout=self._timeout)
        role = names.decode(errors="replace").strip().splitlines()[0].strip() if status == 200 and names.strip() else ""
        if not role:
            return None
        status, data = self._request("GET", base + role, headers=headers, timeout=self._timeout)
        if status != 200:
            return None
        try:
            return _from_json(data, f"{self.name} (role {role})")
        except CredentialsError as exc:
            logger.debug("s3result: %s", exc)
            return None
