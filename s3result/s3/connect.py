"""Which transport reaches the store: our own httpcore pool, or httpx through a proxy.

The client asks for one transport per process and endpoint (``pool.ProcessPool``). Without a
proxy in the environment it is ``HttpcoreTransport`` (pre-built headers, a third of the CPU of
``httpx.Client``); behind ``HTTPS_PROXY``/``HTTP_PROXY`` it is httpx's own proxy transport
(CONNECT for https, forwarding for http), with the same limits and timeouts. No TLS context is
built for an ``http://`` endpoint.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .forks import on_fork_in_child
from .network import environment_proxy, proxy_variable
from .transport import HttpcoreTransport, HttpxTransport, Transport, make_ssl_context

if TYPE_CHECKING:
    import ssl

    from .config import S3Config

__all__ = ["make_transport", "warn_plain_http"]

logger = logging.getLogger("s3result.s3.client")

_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$")
# Process-wide: a log line once per host, whichever client sends there (a forked child keeps it).
_warned_plain_http: set[str] = set()
_warned_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _warned_lock
    _warned_lock = threading.Lock()  # a fork may have copied it held


on_fork_in_child(_after_fork_in_child)


def warn_plain_http(base_url: str) -> None:
    """Warn once per host of a plain ``http://`` endpoint that is not this machine."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not _LOOPBACK.match(host):
        with _warned_lock:
            if host not in _warned_plain_http:
                _warned_plain_http.add(host)
                logger.warning(
                    "s3result: plain http:// to %s sends results unencrypted over the network; use https://", host
                )


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
