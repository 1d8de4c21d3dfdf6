"""The error tree: status mapping in one place, XML parsing, pickling of every class."""

from __future__ import annotations

import inspect
import pickle

import pytest

from s3result import errors
from s3result.errors import error_from_response

ALL = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.S3ResultError)]


def _instance(cls: type[errors.S3ResultError]) -> errors.S3ResultError:
    if issubclass(cls, errors.S3Error):
        return cls(status=503, code="SlowDown", message="m", request_id="r", key="k", method="PUT", region="x")
    if issubclass(cls, errors.ConfigError):
        return cls("bucket", "bad")
    if issubclass(cls, errors.TransportError):
        return cls("refused", method="GET", key="k")
    return cls("message")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_pickles(cls: type[errors.S3ResultError]) -> None:
    exc = _instance(cls)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and str(back) == str(exc)
    assert vars(back) == vars(exc)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_has_a_docstring(cls: type[errors.S3ResultError]) -> None:
    assert cls.__doc__ and "\n" not in cls.__doc__.strip()


@pytest.mark.parametrize(
    "status,creating,cls",
    [
        (404, False, errors.NotFound),
        (412, False, errors.PreconditionFailed),
        (412, True, errors.AlreadyExists),
        (304, True, errors.AlreadyExists),
        (409, False, errors.Conflict),
        (403, False, errors.AccessDenied),
        (401, False, errors.Unauthenticated),
        (501, False, errors.NotImplementedByStore),
        (503, False, errors.ServerError),
        (400, False, errors.S3Error),
    ],
)
def test_status_maps_to_the_most_specific_class(status: int, creating: bool, cls: type[errors.S3Error]) -> None:
    exc = error_from_response(status=status, body=b"", method="PUT", key="k", creating=creating)
    assert type(exc) is cls and exc.status == status and exc.code


def test_xml_error_fields_are_parsed_and_unescaped() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>The key &lt;k&gt; &amp; more</Message><Key>k</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>"
    )
    exc = error_from_response(status=404, body=body, method="GET", key="k")
    assert (exc.code, exc.message, exc.request_id) == ("NoSuchKey", "The key <k> & more", "4442587FB7D0A2F9")
    assert str(exc) == "S3 GET 'k' failed: 404 NoSuchKey: The key <k> & more"


def test_the_one_line_keeps_the_code_and_the_first_sentence_of_the_stores_message() -> None:
    """A store's message is mostly boilerplate after its first sentence; the line stays short."""
    body = (
        b"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match "
        b"the signature you provided. Check your key and signing method.</Message>"
        b"<RequestId>" + b"7" * 52 + b"</RequestId></Error>"
    )
    exc = error_from_response(status=403, body=body, method="GET", key="celery/celery-task-meta-" + "a" * 36)
    text = str(exc)
    assert text == (
        "S3 GET 'celery/celery-task-meta-" + "a" * 36 + "' failed: 403 SignatureDoesNotMatch: The request "
        "signature we calculated does not match the signature you provided. (the secret access key is wrong for "
        "this access key id; fix s3_secret_access_key or AWS_SECRET_ACCESS_KEY)"
    )
    assert "Check your key" not in text and "7777" not in text and len(text) < 300
    assert exc.message.endswith("signing method.") and exc.request_id == "7" * 52  # kept whole on the error
    long = error_from_response(
        status=500, body=b"<Error><Code>X</Code><Message>" + b"w " * 200 + b"</Message></Error>", method="GET", key="k"
    )
    assert str(long).endswith("...") and len(str(long)) < 220


def test_truncated_xml_still_yields_the_code() -> None:
    exc = error_from_response(status=503, body=b"<Error><Code>SlowDown</Code><Mess", method="GET", key="k")
    assert exc.code == "SlowDown"


def test_non_s3_answers_are_named() -> None:
    exc = error_from_response(status=200, body=b"<!DOCTYPE html><html>login</html>", method="GET", key="k")
    assert "HTML" in str(exc) and "not an S3 answer" in str(exc) and "endpoint_url" in str(exc)
    exc = error_from_response(status=400, body=b'{"error": 1}', method="GET", key="k")
    assert "non-S3" in str(exc)


def test_replace_keeps_the_class_and_every_other_field() -> None:
    error = errors.AccessDenied(status=403, code="AccessDenied", key="k", method="GET", request_id="r", region="eu")
    changed = error.replace(message="better", hint="do this")
    assert type(changed) is errors.AccessDenied
    assert (changed.key, changed.method, changed.request_id, changed.region) == ("k", "GET", "r", "eu")
    assert "better" in str(changed) and "do this" in str(changed)


def test_a_proxy_page_is_not_s3_whatever_its_status() -> None:
    """A web server's 403 page is no S3 AccessDenied: no IAM grant is offered for it (review of issue 15)."""
    exc = error_from_response(status=403, body=b"<html><h1>403 Forbidden</h1></html>", method="PUT", key="k")
    assert isinstance(exc, errors.AccessDenied) and exc.code == errors.NOT_S3
    assert "grant" not in str(exc) and "endpoint_url" in str(exc)
    assert error_from_response(status=404, body=b"<html>gone</html>", method="GET", key="k").code == errors.NOT_S3


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_is_stored_under_its_public_home(cls: type[errors.S3ResultError]) -> None:
    """Pickles and Celery's serialized exceptions name ``s3result.errors``: any version reads them."""
    exc = _instance(cls)
    data = pickle.dumps(exc, protocol=0)
    assert b"s3result.errors" in data and b"s3result.s3" not in data
    assert cls.__module__ == "s3result.errors" and getattr(errors, cls.__name__) is cls


def test_pickles_name_the_rebuild_functions_every_version_has() -> None:
    """Old and new workers read each other's pickles: both call ``s3result.errors._rebuild(_s3)``."""
    s3 = pickle.dumps(_instance(errors.NotFound), protocol=0)
    transport = pickle.dumps(_instance(errors.ConnectError), protocol=0)
    assert b"s3result.errors\n_rebuild_s3\n" in s3 and b"s3result.errors\n_rebuild\n" in transport
    assert errors._rebuild is errors.rebuild_error and errors._rebuild_s3 is errors.rebuild_s3_error


@pytest.mark.parametrize("cls", [errors.NotFound, errors.ConnectError, errors.ResultTooLarge, errors.ConfigError])
def test_a_celery_serialized_error_comes_back_by_name(cls: type[errors.S3ResultError]) -> None:
    from celery import Celery

    app = Celery(set_as_current=False)
    app.conf.result_backend = "cache+memory://"
    exc = _instance(cls)
    stored = app.backend.prepare_exception(exc, "json")
    assert stored["exc_module"] == "s3result.errors" and stored["exc_type"] == cls.__name__
    back = app.backend.exception_to_python(stored)
    # Celery calls cls(*args): keyword-only errors come back as an Exception naming the class.
    assert isinstance(back, cls) or f"<class 's3result.errors.{cls.__name__}'>" in str(back)
