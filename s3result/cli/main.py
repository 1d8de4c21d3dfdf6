"""The ``s3result`` command: check, conformance, demo, serve, get, forget, lifecycle, cost (see ``s3result --help``).

It sits on top of the layers: it may use the backend, the client and the embedded store,
and nothing below imports it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo  # imported when run: the demo needs the embedded store's modules

    return demo(args)


def _serve(args: argparse.Namespace) -> int:
    from .serve import ServeError, serve

    try:
        return serve(args)
    except ServeError as exc:
        print(f"s3result serve: {exc}", file=sys.stderr)
        return 1


def _settings_and_app(args: argparse.Namespace) -> tuple[Any, Any]:
    """The same configuration a worker would read: from ``--app`` or ``--url``."""
    from ..results.config import from_celery_conf

    if getattr(args, "app", None):
        app = _import_app(args.app)
        backend = app.conf.result_backend
        if not isinstance(backend, str) or not backend.startswith("s3result"):
            from ..results.config import redact_url

            shown = redact_url(backend) if isinstance(backend, str) else repr(backend)
            if isinstance(backend, str) and backend.startswith("s3:"):
                raise UsageError(
                    f"the app {args.app!r} has result_backend={shown!r}: s3:// is Celery's built-in boto3 backend "
                    "(it wants s3_bucket, hence its 'Missing bucket name'), not s3result; write s3result://BUCKET/PREFIX"
                )
            raise UsageError(
                f"the app {args.app!r} has result_backend={shown!r}, not an s3result:// URL; "
                "set result_backend, or give --url"
            )
        return from_celery_conf(app.conf, backend), app
    if getattr(args, "url", None) and getattr(args, "url_option", None):
        raise UsageError("give the URL once: as the argument or with --url")
    url = getattr(args, "url", None) or getattr(args, "url_option", None) or os.environ.get("S3RESULT_URL")
    if not url and args.command == "conformance":
        raise UsageError(
            "give the store's URL: s3result conformance s3result+https://HOST/BUCKET/PREFIX (or set S3RESULT_URL)"
        )
    if not url:
        raise UsageError("give --app proj.celery or --url s3result://BUCKET/PREFIX (or set S3RESULT_URL)")
    from celery import Celery

    app = Celery("s3result-cli", set_as_current=False)
    app.conf.result_backend = url
    return from_celery_conf(app.conf, url), app


class UsageError(Exception):
    """A command-line mistake: one line on stderr, exit status 2."""


class NothingStored(Exception):
    """``get`` or ``forget`` of a task with no result at its key: one line, exit status 3."""


def _import_app(name: str) -> Any:
    """The Celery app named as for ``celery -A``; a failure is one line that says what to check."""
    from celery.utils.imports import symbol_by_name

    if "://" in name:  # a result_backend URL where the app was meant: say so, without repeating it
        raise UsageError("--app names the Celery app (proj.celery or proj.celery:app); give a URL with --url")
    sys.path.insert(0, os.getcwd())
    try:
        app = symbol_by_name(name if ":" in name else f"{name}:app")
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(
            f"cannot load the Celery app {name!r} ({type(exc).__name__}: {exc}); give it as for celery -A "
            "(proj.celery or proj.celery:app) and run from the project's folder"
        ) from None
    if not hasattr(app, "conf"):
        raise UsageError(f"{name!r} is not a Celery app; give it as for celery -A (proj.celery or proj.celery:app)")
    return app


def _task_id(text: str) -> str:
    """argparse type: a task id that can name a key (not empty, no surrounding spaces)."""
    if not text or text != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a task id (empty, or with spaces around it)")
    return text


def _number(kind: type[int] | type[float], low: float, what: str) -> Any:
    """argparse type: a number of ``kind`` not below ``low``; the error names the rule."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # a whole number past a float's range: the arithmetic cannot hold it
            shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"
            raise argparse.ArgumentTypeError(f"{shown} is not a {what} (too large)") from None
        if value < low or not finite:
            rule = "" if "(" in what else f" (at least {low:g})"  # "number (0 or more)" says it already
            raise argparse.ArgumentTypeError(f"{text} is not a {what}{rule}")
        return value

    return parse


def _check(args: argparse.Namespace) -> int:
    from .check import run_check

    settings, app = _settings_and_app(args)
    # How this check was pointed at the configuration, for the fixes it prints; never the URL
    # itself, which may hold a secret (S3RESULT_URL, when that was used, needs no option).
    if getattr(args, "app", None):
        target = f" --app {args.app}"
    elif getattr(args, "url", None):
        target = " --url URL"
    else:
        target = ""
    return run_check(settings, app, as_json=args.json, out=sys.stdout, target=target)


def _conformance(args: argparse.Namespace) -> int:
    from ..conformance.checks import CHECKS
    from .conformance import conformance

    unknown = [c for c in args.check or () if c not in CHECKS]
    if unknown:
        raise UsageError(f"no check named {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    settings, app = _settings_and_app(args)
    from ..results.config import raw_slash_warning

    slash = raw_slash_warning(app.conf.result_backend)
    if slash:
        print(f"s3result conformance: warning: {slash}", file=sys.stderr)
    return conformance(args, settings)


def _backend(args: argparse.Namespace) -> Any:
    _, app = _settings_and_app(args)
    return app.backend


def _task_key(backend: Any, task_id: str) -> str:
    """The object key of ``task_id``; an id that cannot be a key is the user's argument: status 2."""
    from ..errors import InvalidKey

    try:
        key = str(backend.settings.object_key(backend.get_key_for_task(task_id).decode()))
        backend.client.target(key)  # the client's own rules (UTF-8, at most 1024 bytes), before any request
        return key
    except InvalidKey as exc:
        raise UsageError(f"argument task_id: {exc}") from None


def _within(args: argparse.Namespace, command: str, call: Any) -> Any:
    """Run ``call(deadline)`` under the command's ``--timeout`` (the store's retries included).

    A store that accepts connections and never answers would otherwise hold the command for
    read_timeout x max_attempts (90 s by default) without a word; the error says which limit ended it.
    """
    from ..errors import RequestTimeout

    deadline = time.monotonic() + args.timeout
    try:
        return call(deadline)
    except RequestTimeout as exc:
        if time.monotonic() < deadline - 0.05:
            raise  # the store's read_timeout ended it, and the error says so
        text = str(exc).split("; raise read_timeout", 1)[0]
        raise RequestTimeout(
            f"{text}; {command} gave up after --timeout {args.timeout:g} s (give more if the store is slow)",
            method=exc.method,
            key=exc.key,
        ) from exc


def _get(args: argparse.Namespace) -> int:
    backend = _backend(args)
    key = _task_key(backend, args.task_id)
    found = _within(args, "s3result get", lambda deadline: backend.client.get_or_none(key, deadline=deadline))
    body = None if found is None else found.body
    if body is None:
        raise NothingStored(
            f"nothing stored for task {args.task_id} at {key!r}: it has not finished (or was never sent), "
            "or its result expired or was forgotten"
        )
    meta = backend.decode_result(body)
    result = meta.get("result")
    if isinstance(result, BaseException):
        result = f"{type(result).__name__}: {result}"
    shown = {
        k: (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v)) for k, v in meta.items()
    }
    shown["result"] = result if isinstance(result, (str, int, float, bool, type(None), list, dict)) else repr(result)
    if args.json:
        sys.stdout.write(json.dumps(shown, default=repr, indent=2) + "\n")
    else:
        sys.stdout.write(f"task {args.task_id}: {meta['status']}\n")
        for key, value in shown.items():
            if key not in ("status", "task_id") and value not in (None, [], {}):
                sys.stdout.write(f"  {key}: {value}\n")
    return 0 if meta["status"] != "PENDING" else 1


def _forget(args: argparse.Namespace) -> int:
    from ..errors import NotFound

    backend = _backend(args)
    key = _task_key(backend, args.task_id)
    try:
        _within(args, "s3result forget", lambda deadline: backend.client.head(key, deadline=deadline))
    except NotFound as exc:
        if exc.code == "NoSuchBucket":
            raise
        # A HEAD's 404 has no body to tell S3's "no such key" from a web page on the endpoint:
        # one GET does (it raises NotS3), so a wrong endpoint is never "nothing stored".
        _within(args, "s3result forget", lambda deadline: backend.client.get_or_none(key, deadline=deadline))
        raise NothingStored(f"nothing stored for task {args.task_id} at {key!r}; nothing deleted") from None
    _within(args, "s3result forget", lambda deadline: backend.client.delete(key, deadline=deadline))
    sys.stdout.write(f"forgot {args.task_id} (deleted {key!r})\n")
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    from .expiry import apply_rule, days_from_expires, days_text, expires_set_by_user, negative_expires
    from .lifecycle import lifecycle_text

    settings, app = _settings_and_app(args)
    if not settings.prefix and not args.whole_bucket:
        raise UsageError(
            "no prefix is configured, so a rule would expire every object in the bucket; "
            "set one (s3result://BUCKET/PREFIX) or pass --whole-bucket"
        )
    days = args.days
    if days is None:
        if expires_set_by_user(app.conf):
            negative = negative_expires(app.conf.result_expires)
            if negative:
                raise UsageError(f"{negative}; or give --days N")
            days = days_from_expires(app.conf.result_expires)
            if days is None:
                raise UsageError(
                    f"result_expires is {app.conf.result_expires!r}: results are meant to be kept; "
                    "give --days N to expire them anyway"
                )
            origin = f"result_expires ({app.conf.result_expires})"
        else:
            days = 1
            origin = "Celery's default result_expires of 1 day (set result_expires, or pass --days, to choose)"
        sys.stderr.write(f"s3result: expiring after {days_text(days)}, from {origin}\n")
    if not args.apply:
        sys.stdout.write(lifecycle_text(settings, days))
        return 0
    from ..errors import TransportError
    from ..s3.client import S3Client

    client = S3Client(settings.s3)
    try:
        done = apply_rule(client, settings.prefix, days)
    except TransportError as exc:
        if exc.method != "PUT":
            raise
        # The store may have applied the PUT before the connection failed: say how to know.
        raise type(exc)(
            f"{exc}; the store may have applied the rule all the same: run the command again, it reads the "
            "rules and says whether the rule is in place",
            method=exc.method,
            key=exc.key,
        ) from exc
    finally:
        client.close()
    sys.stdout.write(done.message + "\n")
    return 0


#: The most polls per get() that ``cost`` reckons with (a day at 0.1 s is 864,000).
_MAX_POLLS = 1_000_000


def _cost(args: argparse.Namespace) -> int:
    from .cost import MAX_WAVES, Requests, monthly_report, per_task_from_args

    if args.group_size and args.chord_parts:
        raise UsageError("give --group-size or --chord-parts, not both (a chord's header is its group)")
    tasks = args.group_size or args.chord_parts
    if args.worker_concurrency and tasks and math.ceil(tasks / args.worker_concurrency) > MAX_WAVES:
        raise UsageError(
            f"{tasks} tasks at --worker-concurrency {args.worker_concurrency} make more than {MAX_WAVES:,} waves; "
            "give the concurrency of all your workers together, or 0 (all at once)"
        )
    if args.group_size == 1:
        raise UsageError("--group-size 1 is not a group; give 0 (no groups) or 2 and more")
    if args.chord_parts == 1:
        raise UsageError("--chord-parts 1 is not a chord; give 0 (no chords) or 2 and more")
    if args.waited > 1:
        raise UsageError(
            f"--waited {args.waited:g} is not a share of tasks: give one between 0 and 1 (0.25: a quarter)"
        )
    rounds = math.ceil(tasks / args.worker_concurrency) if args.worker_concurrency and tasks else 1
    if args.task_seconds * rounds > _MAX_POLLS * args.interval:
        # The arithmetic walks the poll schedule; beyond this it would run for minutes.
        waves = f" x {rounds} waves" if rounds > 1 else ""
        raise UsageError(
            f"--task-seconds {args.task_seconds:g}{waves} at --interval {args.interval:g} is over {_MAX_POLLS:,} "
            "polls per get(): give the task's time in seconds and the interval get() polls at"
        )
    per_task: Requests = per_task_from_args(args)
    try:
        report = monthly_report(
            tasks_per_day=args.tasks_per_day,
            per_task=per_task,
            result_bytes=args.result_bytes,
            retention_days=args.retention_days,
            put_per_1000=args.put_price,
            get_per_1000=args.get_price,
            storage_gb_month=args.storage_price,
        )
    except OverflowError:
        raise UsageError(
            "the monthly figures overflow (past 1e308): give real --tasks-per-day, --retention-days, "
            "--result-bytes and prices"
        ) from None
    sys.stdout.write(report)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the command, what is wrong, and where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {_without_urls(message)} (see {self.prog} --help)\n")


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s']*")


def _without_urls(text: str) -> str:
    """argparse repeats the word it refused; a URL there may carry a key and its secret."""
    from ..results.options import redact_url

    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="s3result",
        description="Celery results on S3, without boto.",
        epilog="exit status: 0 ok; 1 problems found, the store refused, or an invalid configuration; 2 a usage mistake; "
        "3 nothing stored for that task (get, forget)",
    )
    parser.add_argument("--version", action="version", version=f"s3result {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def target(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--app", help="the Celery app, as for celery -A (proj.celery or proj.celery:app)")
        group.add_argument("--url", help="a result_backend URL (default: $S3RESULT_URL)")

    demo = sub.add_parser(
        "demo",
        help="run tasks, a group and a chord on an embedded S3 store (moto server)",
        description="Start an embedded S3 store (moto server, auth on) and a real Celery worker, run tasks, a "
        "group and a chord, and print the results, the S3 requests counted at the wire and what cost predicts. "
        "Needs s3result[testing].",
    )
    demo.set_defaults(func=_demo)
    serve = sub.add_parser(
        "serve",
        help="run a local S3 store for development and CI (moto server, auth on) until Ctrl-C",
        description="Run the testing kit's local S3 store (moto server on 127.0.0.1, SigV4 auth on, atomic "
        "conditional writes) in the foreground until Ctrl-C, and print the AWS_* lines to export and the "
        "result_backend URL. Everything is kept in memory (moto cannot persist). Needs s3result[testing].",
    )
    from .serve import add_serve_arguments

    add_serve_arguments(serve)
    serve.set_defaults(func=_serve)
    check = sub.add_parser(
        "check",
        help="show the resolved configuration and probe the store live",
        description="Show the resolved configuration, then probe the store layer by layer (network, "
        "authentication, permissions, store features, expiry, security), each failure with its fix.",
    )
    target(check)
    check.add_argument("--json", action="store_true", help="machine-readable output for CI pipelines")
    check.set_defaults(func=_check)
    conformance = sub.add_parser(
        "conformance",
        help="check that a store has the S3 semantics s3result relies on (one line per check)",
        description="Run the conformance checks against the store a result_backend URL names, with the credentials "
        "a worker would use, and say per check: pass, differs (and what that means for s3result) or FAIL. Exit 0 "
        "when every semantic s3result relies on holds, 1 naming the first that does not. What it writes is "
        "under PREFIX/s3result-conformance/ and deleted at the end.",
    )
    from .conformance import add_conformance_arguments

    add_conformance_arguments(conformance)
    conformance.set_defaults(func=_conformance)
    get = sub.add_parser(
        "get",
        help="show one stored result, decoded, with its state",
        description="Show the result stored for one task, decoded, with its state (exit 3 when nothing is stored).",
    )
    target(get)
    get.add_argument("task_id", type=_task_id, help="the task's id")
    get.add_argument("--json", action="store_true", help="print the stored result as JSON")
    get.set_defaults(func=_get)
    forget = sub.add_parser(
        "forget",
        help="delete one stored result",
        description="Delete the result stored for one task (exit 3 when nothing is stored).",
    )
    target(forget)
    forget.add_argument("task_id", type=_task_id, help="the task's id")
    forget.set_defaults(func=_forget)
    for command in (get, forget):
        command.add_argument(
            "--timeout",
            type=_number(float, 0.1, "number of seconds"),
            default=20.0,
            help="give up after this many seconds, the store's retries included (default 20)",
        )
    lifecycle = sub.add_parser(
        "lifecycle",
        help="the bucket lifecycle rule that expires results: print it, or --apply it",
        description="Print the bucket lifecycle rule that expires results under the prefix after result_expires "
        "(S3 XML, aws and mc commands), or merge it into the bucket's configuration with --apply.",
    )
    target(lifecycle)
    lifecycle.add_argument(
        "--days",
        type=_number(int, 1, "whole number of days"),
        help="expire results this many days after they are written (default: from result_expires)",
    )
    lifecycle.add_argument(
        "--apply", action="store_true", help="merge the rule into the bucket's lifecycle configuration"
    )
    lifecycle.add_argument("--whole-bucket", action="store_true", help="allow a rule without a prefix")
    lifecycle.set_defaults(func=_lifecycle)
    cost = sub.add_parser(
        "cost",
        help="requests and storage cost per month (AWS S3 Standard list prices by default)",
        description="Requests per task and the cost per month of requests and storage, from s3result's own "
        "request paths: one PUT per state, one GET per poll while someone waits, a group's and a chord's reads. "
        "Prices are parameters (AWS S3 Standard list prices by default).",
    )
    from .cost import add_cost_arguments

    add_cost_arguments(cost, _number)
    cost.set_defaults(func=_cost)
    return parser


#: The commands that name their store with --app or --url (``conformance`` takes the URL itself).
_TARGETED = ("check", "get", "forget", "lifecycle")


def _unrecognized(
    parser: argparse.ArgumentParser, command: str | None, extra: list[str], *, url_given: bool = False
) -> NoReturn:
    """A word the command does not take: point at that command's help, and at ``--url`` for a URL.

    ``s3result check s3result://bucket/prefix`` is what a new user types first (``conformance``
    takes the URL that way); argparse alone blames the top-level command and its help. Only a
    bare URL is pointed at ``--url``: a mistyped option (``--urll=URL``) or a second URL after
    ``--url`` is an unrecognized argument, named with its URL masked.
    """
    prog = f"s3result {command}" if command else "s3result"
    url = next((word for word in extra if "://" in word and not word.startswith("-")), None)
    if url is not None and command in _TARGETED and not url_given:
        scheme = url.split("://", 1)[0]
        parser.exit(
            2, f"{prog}: give the result_backend URL with --url: {prog} --url '{scheme}://...' (see {prog} --help)\n"
        )
    parser.exit(2, f"{prog}: unrecognized arguments: {_without_urls(' '.join(extra))} (see {prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3result`` console script; see the epilog of --help for exit statuses."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, args.command, extra, url_given=getattr(args, "url", None) is not None)
    if args.command is None:
        parser.print_help()
        return 2
    from ..errors import ConfigError, S3ResultError

    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("moto"):
            print("s3result demo needs the embedded store: pip install 's3result[demo]'", file=sys.stderr)
            return 2
        return _unexpected(exc)
    except UsageError as exc:
        print(f"s3result {args.command}: {exc}", file=sys.stderr)
        return 2
    except NothingStored as exc:
        print(f"s3result {args.command}: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"s3result {args.command}: {exc}", file=sys.stderr)
        return 1
    except S3ResultError as exc:
        print(f"s3result {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"s3result {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a Celery ImproperlyConfigured wrapping our ConfigError, say
        if type(exc).__name__ == "ImproperlyConfigured":
            print(f"s3result {args.command}: {exc}", file=sys.stderr)
            return 1
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> int:
    """Anything else: one line, and the traceback only when asked for (S3RESULT_DEBUG=1)."""
    if os.environ.get("S3RESULT_DEBUG"):
        raise exc
    text = str(exc).splitlines()[0] if str(exc) else ""
    print(
        f"s3result: unexpected {type(exc).__name__}: {text} (set S3RESULT_DEBUG=1 for the traceback)", file=sys.stderr
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
