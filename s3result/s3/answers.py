"""What a store's error answer means: the mapped ``S3Error``, with the message that says what to fix.

Moved out of ``client`` so that the request loop stays readable: these functions only read
the answer and the client's addressing, and never send anything.
"""

from __future__ import annotations

from .errordoc import error_from_response
from .errors import NOT_S3, AccessDenied, NotFound, S3Error
from .response import RawResponse, redirect_host

__all__ = ["credentials_hint", "map_error"]


def map_error(
    method: str,
    key: str,
    resp: RawResponse,
    creating: bool,
    *,
    base: str,
    bucket: str,
    source: str | None,
    secret_origin: str | None,
) -> S3Error:
    """The ``S3Error`` for an error answer, its message naming the endpoint, bucket or key at fault."""
    error = error_from_response(
        status=resp.status,
        body=resp.body if method != "HEAD" else b"",
        method=method,
        key=key,
        request_id=resp.headers.get("x-amz-request-id", ""),
        creating=creating,
        content_type=resp.headers.get("content-type", ""),
    )
    if resp.status == 307:
        # S3 sends this for a bucket created recently in another region (its DNS name is
        # not everywhere yet); other stores or balancers may too. Never followed to another
        # host: the request would be signed for it. (On AWS, _learn_region follows it.)
        where = redirect_host(resp) or "another endpoint"
        error = error.replace(message=f"the store at {base} redirected the request to {where} (307 TemporaryRedirect)")
    if error.code == NOT_S3:
        # Name the endpoint: whatever answers there is not the store's S3 API.
        error = error.replace(message=error.message.replace("the endpoint", base, 1))
    if isinstance(error, NotFound) and error.code == "NoSuchBucket":
        # Name the bucket: the key alone does not say which name is wrong.
        error = error.replace(message=f"bucket {bucket!r} does not exist at {base}")
        if bucket != bucket.lower():  # legal on a few stores only; MinIO, R2 and AWS never hold one
            error = error.replace(
                message=f"{error.message} (bucket names are lower case on most stores: check the bucket setting)"
            )
    if error.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"):
        error = error.replace(hint=credentials_hint(error.code, source, secret_origin))
    if (
        isinstance(error, AccessDenied)
        and method in ("GET", "HEAD")
        and error.code == "AccessDenied"
        and not key.startswith("?")  # a bucket subresource, not a key that may be missing
    ):
        # S3 hides whether a key exists from callers without s3:ListBucket: 403, not 404.
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (Permissions)
        error = error.replace(
            message=(
                f"denied: if the key does not exist yet, S3 answers 403, not 404, to credentials without "
                f"s3:ListBucket on bucket {bucket!r}; grant s3:ListBucket and s3:GetObject"
            ),
        )
    return error


def credentials_hint(code: str, source: str | None, origin: str | None) -> str:
    """Where to fix a refused key: the place it was really given, not a generic list."""
    what = "secret access key" if code == "SignatureDoesNotMatch" else "access key id"
    field = "aws_secret_access_key" if code == "SignatureDoesNotMatch" else "aws_access_key_id"
    problem = (
        "the secret access key is wrong for this access key id"
        if code == "SignatureDoesNotMatch"
        else "the store does not know this access key id"
    )
    source = source or ""
    if source == "settings" and origin == "the result_backend URL":
        where = (
            f"fix the {what} in the result_backend URL (KEY:SECRET@), percent-encoded: "
            "'/' as %2F, '+' as %2B, '@' as %40"
        )
    elif source == "settings" and origin:
        where = f"fix the {what} in {origin}"
    elif source == "environment":
        where = "fix AWS_SECRET_ACCESS_KEY" if code == "SignatureDoesNotMatch" else "fix AWS_ACCESS_KEY_ID"
    elif source.startswith("shared-files (") and source.endswith(")"):
        where = f"fix {field} in {source[len('shared-files (') : -1]}"
    elif source:
        where = f"the credentials came from {source}"
    else:
        return ""
    return f"{problem}; {where}"
