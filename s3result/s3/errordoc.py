"""Reading a store's error answer: the S3 error document, and the most specific ``S3Error`` for it.

The error classes are in ``errors`` (their public home is ``s3result.errors``, which exports
``error_from_response`` from here); this is the one place a status and a body become one of them.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import (
    NOT_S3,
    AccessDenied,
    AlreadyExists,
    Conflict,
    NotFound,
    NotImplementedByStore,
    PreconditionFailed,
    S3Error,
    ServerError,
    Unauthenticated,
)

__all__ = ["error_from_response", "is_missing_key"]


_TAG = re.compile(rb"<(Code|Message|RequestId|Region|Key)>([^<]*)</\1>")


def _parse_xml_error(body: bytes) -> dict[str, str]:
    """Pull Code, Message, RequestId and Region out of an S3 error document.

    A regex instead of an XML parser: the document is tiny and flat, and this also copes with
    the truncated or slightly malformed bodies some gateways send.
    """
    out: dict[str, str] = {}
    for name, value in _TAG.findall(body[:8192]):
        tag = name.decode()
        if tag not in out:
            out[tag] = _unescape(value.decode("utf-8", "replace"))
    return out


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def is_missing_key(status: int, body: bytes) -> bool:
    """Whether an answer is S3's "no such key": a 404 with an S3 error document, not NoSuchBucket.

    Read without building an error: a pending poll is the common 404, and an exception built,
    rendered and caught costs more than the request's signature. What this says is missing,
    ``error_from_response`` would map to ``NotFound`` with a code other than NoSuchBucket or NotS3.
    """
    if status != 404 or not body:
        return False
    if b"<Code>NoSuchKey</Code>" in body:
        return True
    fields = _parse_xml_error(body)
    return bool(fields) and fields.get("Code") != "NoSuchBucket"


def error_from_response(
    *,
    status: int,
    body: bytes,
    method: str,
    key: str,
    request_id: str = "",
    creating: bool = False,
    content_type: str = "",
) -> S3Error:
    """Turn an error response into the most specific ``S3Error``; the only status mapping.

    A HEAD has no body, so its errors are classified by status alone. A body that is not S3
    XML (an HTML page from a proxy, say) is reported as such, so the user looks at the endpoint.
    """
    parsed = _parse_xml_error(body) if body else {}
    code = parsed.get("Code", "")
    message = parsed.get("Message", "")
    if body and not parsed:
        # A web server, a login portal or a proxy's own page: its 403 is no S3 AccessDenied (no
        # IAM grant can fix it), its 404 no NoSuchKey. The status still picks the class.
        kind = "HTML" if b"<html" in body[:512].lower() or "html" in content_type else "non-S3"
        code = NOT_S3
        message = f"the endpoint answered with {kind}, not an S3 answer"
    elif status == 404 and not body and method != "HEAD":
        # S3 answers a missing key or bucket with an error document; a proxy with no route for
        # the path (Envoy, a balancer's default rule) answers nothing. Taken as "no such key",
        # every result would read as pending. Only a HEAD's 404 is bodiless by nature.
        code = NOT_S3
        message = "the endpoint answered 404 with no body, not an S3 answer"
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "request_id": parsed.get("RequestId", request_id),
        "key": key,
        "method": method,
        "region": parsed.get("Region", ""),
    }
    cls: type[S3Error]
    if status == 404:
        cls = NotFound
    elif status == 412 or (status == 304 and creating):
        cls = AlreadyExists if creating else PreconditionFailed
    elif status == 409:
        cls = Conflict
    elif status == 403:
        cls = AccessDenied
    elif status == 401:
        cls = Unauthenticated
    elif status == 501:
        cls = NotImplementedByStore
    elif status >= 500:
        cls = ServerError
    else:
        cls = S3Error
    return cls(**fields)
