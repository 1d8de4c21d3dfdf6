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

from .network import environment_proxy, proxy_variable, unverified
from .process import PROCESS
from .transport import HttpcoreTransport, HttpxTransport, Transport, make_ssl_context

if TYPE_CHECKING:
    import ssl

    from .config import S3Config

__all__ = ["make_transport", "warn_plain_http", "warn_unverified"]

logger = logging.getLogger("s3result.s3.client")

_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$")
# Process-wide: a log line once per process (per host for plain http), whichever client sends there.
_WARNED = PROCESS.slot(
    "s3.connect.warned",
    set[str],
    fork="kept",
    why="what was warned of once per process (a host's plain http, verification off): a log, not a store's state",
)
_WARNED_LOCK = PROCESS.slot("s3.connect.warned-lock", threading.Lock, fork="renewed", why="guards what was warned of")


def _first_time(what: str) -> bool:
    """True the first time this process asks about ``what``."""
    warned = _WARNED.get()
    with _WARNED_LOCK.get():
        if what in warned:
            return False
        warned.add(what)
        return True


def warn_plain_http(base_url: str) -> None:
    """Warn once per host of a plain ``http://`` endpoint that is not this machine."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not _LOOPBACK.match(host) and _first_time(host):
        logger.warning("s3result: plain http:// to %s sends results unencrypted over the network; use https://", host)


def warn_unverified(ca_bundle: str | None) -> None:
    """Warn once per process that ``ca_bundle=false`` turns TLS verification off."""
    if unverified(ca_bundle) and _first_time("ca_bundle=false"):
        logger.warning(
            "s3result: ca_bundle=false: TLS certificates are NOT verified, so anyone on the network path can "
            "read and change results; give ca_bundle=/path/to/ca.pem for a private CA instead"
        )


def make_transport(config: S3Config, base_url: str) -> Transport:
    """A pool of connections to ``base_url``, bounded by ``max_connections``."""
    context = None
    if base_url.startswith("https:"):
        warn_unverified(config.ca_bundle)
        context = make_ssl_context(config.ca_bundle)
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
