"""What the environment says about the network: which CAs to trust, which proxy to go through.

Workers run behind corporate proxies and private CAs, configured the way every AWS SDK and
HTTP library is: ``AWS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``HTTPS_PROXY``, ``NO_PROXY``. This
module reads them in one place, and costs nothing when they are not set.

Trust, first match wins:

1. the ``ca_bundle`` setting (a path; ``false`` turns verification off, logged once);
2. ``AWS_CA_BUNDLE`` (botocore and the AWS CLI read it in place of their default);
3. ``SSL_CERT_FILE``, then ``SSL_CERT_DIR`` (what httpx and OpenSSL read);
4. certifi's roots (httpx's and botocore's default).

Proxies: httpx's own reading of ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``
(lower-case names too, through ``urllib.request.getproxies``), and httpx's own URL patterns
to pick the one for an endpoint, so the rules are exactly those of ``httpx.Client``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

__all__ = ["environment_proxy", "proxy_variable", "ssl_context", "unverified"]

_TRUE = ("1", "true", "on", "yes", "y")
_FALSE = ("0", "false", "off", "no", "n")


def unverified(ca_bundle: str | None) -> bool:
    """Whether ``ca_bundle`` turns verification off (``false``, ``0``, ``off``...): ``connect`` warns of it."""
    return ca_bundle is not None and ca_bundle.lower() in _FALSE


def ssl_context(ca_bundle: str | None, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context built from the first source of trust in the order above."""
    import ssl  # only https endpoints pay for it

    if unverified(ca_bundle):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle is not None and ca_bundle.lower() not in _TRUE:
        return ssl.create_default_context(cafile=ca_bundle)
    env = os.environ if environ is None else environ
    for name in ("AWS_CA_BUNDLE", "SSL_CERT_FILE"):
        if env.get(name):
            return ssl.create_default_context(cafile=env[name])
    if env.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=env["SSL_CERT_DIR"])
    import certifi  # installed with httpx; imported here so http:// never pays for it

    return ssl.create_default_context(cafile=certifi.where())


def environment_proxy(url: str) -> str | None:
    """The proxy URL httpx would use for ``url`` from the environment; None to go direct."""
    env = os.environ
    if not any(name.lower() in ("http_proxy", "https_proxy", "all_proxy") and env[name] for name in env):
        return None  # the common case: no proxy variable, nothing imported
    import httpx
    from httpx._utils import URLPattern, get_environment_proxies  # httpx.Client's own rules

    target = httpx.URL(url)
    # httpx.Client sorts its mounts so that the most specific pattern is tried first.
    mounts = sorted(((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items()), key=_first)
    for pattern, proxy in mounts:
        if pattern.matches(target):
            return proxy
    return None


def _first(item: tuple[Any, str | None]) -> Any:
    return item[0]


def proxy_variable(url: str) -> str:
    """The name of the environment variable that sends ``url`` through a proxy, for messages.

    The scheme's own variable before ``ALL_PROXY``, lowercase before uppercase (as urllib, whose
    reading httpx uses, lets the lowercase one win).
    """
    scheme = url.split(":", 1)[0].lower()
    env = os.environ
    for wanted in (f"{scheme}_proxy", "all_proxy"):
        for name in (wanted, wanted.upper()):
            if env.get(name):
                return name
    return f"{scheme.upper()}_PROXY"
