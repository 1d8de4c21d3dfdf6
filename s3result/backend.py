"""S3Backend: a Celery result backend on S3 and S3-compatible stores, without boto.

A read is one GET (a 404 is "pending"); ``mget`` runs concurrently over the pool, so
``GroupResult.get()`` is one round of parallel GETs. Settings are read once, in ``__init__``,
through ``config.from_celery_conf``; a bad one becomes ``ImproperlyConfigured`` naming it.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.backends.base import KeyValueStoreBackend
from celery.exceptions import ImproperlyConfigured
from celery.utils.log import get_logger
from kombu.utils.encoding import bytes_to_str

from .client import S3Client
from .config import Settings, from_celery_conf
from .errors import ConfigError, TransportError
from .retry import is_retryable

__all__ = ("S3Backend",)

logger = get_logger(__name__)


class S3Backend(KeyValueStoreBackend):
    """Celery results as S3 objects: ``<prefix>/celery-task-meta-<task id>``."""

    #: ``mget`` fetches many keys concurrently, so joins need no per-task polling loop.
    supports_native_join = True
    #: Objects hold arbitrary bytes, so compressed payloads round-trip unchanged.
    supports_result_compression = True
    #: S3 cannot expire single objects; use a lifecycle rule on the prefix instead.
    supports_autoexpire = False
    #: Without conditional writes a counter would race; chords use chord_unlock.
    implements_incr = False

    def __init__(self, url: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, url=url, **kwargs)
        try:
            self.settings: Settings = from_celery_conf(self.app.conf, url)
        except ConfigError as exc:
            raise ImproperlyConfigured(f"s3result result backend: {exc}") from exc
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        """The S3 client, made on first use; it keeps one connection pool per process."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = S3Client(self.settings)
                client = self._client
        return client

    def _key(self, key: bytes | str) -> str:
        return self.settings.object_key(bytes_to_str(key))

    def get(self, key: bytes | str) -> bytes | None:
        """One GET; a missing key is None (no HEAD first)."""
        found = self.client.get_or_none(self._key(key))
        return None if found is None else found.body

    def mget(self, keys: list[bytes | str]) -> list[bytes | None]:
        """Concurrent GETs over the pool; None where a key is missing."""
        found = self.client.get_many([self._key(k) for k in keys])
        return [None if f is None else f.body for f in found]

    def set(self, key: bytes | str, value: bytes | str) -> None:
        """One PUT of the encoded value."""
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self.client.put(self._key(key), body, content_type=self._content_type())

    def delete(self, key: bytes | str) -> None:
        """DELETE, idempotent: a missing key is fine."""
        self.client.delete(self._key(key))

    def _content_type(self) -> str:
        return "application/octet-stream" if self.compression else str(self.content_type)

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """Transient store failures that survived the client's own retries.

        The client already retried them within its budget; returning True lets
        ``result_backend_always_retry`` ride out a longer outage on top, by choice.
        """
        return isinstance(exc, TransportError) or is_retryable(exc)

    def as_uri(self, include_password: bool = False) -> str:
        """The URL with the secret masked (Celery's generic masking misses the userinfo form)."""
        if include_password:
            return str(self.url or self.settings.redacted_url())
        return self.settings.redacted_url()

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {}, url=self.url)
        return super().__reduce__(args, kwargs)
