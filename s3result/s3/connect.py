"""Which transport reaches the store: our own httpcore pool, or httpx through a proxy.

The client asks for one transport per process and endpoint (``S3Client._get_slot``). Without a
proxy in the environment it is ``HttpcoreTransport`` (pre-built headers, a third of the CPU of
``httpx.Client``); behind ``HTTPS_PROXY``/``HTTP_PROXY`` it is httpx's own proxy transport
(CONNECT for https, forwarding for http), with the same limits and timeouts. No TLS context is
built for an ``http://`` endpoint.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .network import environment_proxy, proxy_variable
from .transport import HttpcoreTransport, HttpxTransport, Transport, make_ssl_context

if TYPE_CHECKING:
    import ssl

    from .config import S3Config

__all__ = ["make_transport"]

logger = logging.getLogger("s3result.s3.client")


def make_transport(config: S3Config, base_url: str) -> Transport:
    """A pool of connections to ``base_url``, bounded by ``max_connections``."""
    context = make_ssl_context(config.ca_bundle) if base_url.startswith("https:") else None
    proxy = environment_proxy(base_url)
    if proxy is not None:
        return _proxied(config, base_url, proxy, context)
    return HttpcoreTransport(
        base_url=base_url,
        max_connections=config.max_connections,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        ssl_context=context,
        max_body=config.max_body_size,
    )


def _proxied(config: S3Config, base_url: str, proxy: str, context: ssl.SSLContext | None) -> Transport:
    """httpx's own proxy transport (CONNECT for https, forwarding for http), same limits and timeouts."""
    import httpx  # only behind a proxy: the common path never builds an httpx transport

    s = config
    parts = urlsplit(proxy)
    logger.info("s3result: reaching %s through the proxy at %s:%s", base_url, parts.hostname, parts.port or "")
    where = (f"{parts.hostname}:{parts.port or ''}", proxy_variable(base_url))
    transport = httpx.HTTPTransport(
        proxy=proxy,
        verify=context if context is not None else True,
        limits=httpx.Limits(max_connections=s.max_connections, max_keepalive_connections=s.max_connections),
        trust_env=False,
    )
    timeout = httpx.Timeout(s.read_timeout, connect=s.connect_timeout)
    return HttpxTransport(transport, base_url, timeout=timeout, proxy=where)
