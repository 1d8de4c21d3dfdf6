"""``s3result conformance URL``: the conformance checks against the store a backend URL names.

One line per check as it ends (pass, differs and what that means, or FAIL), then a verdict:
exit 0 when every semantic s3result relies on holds, 1 naming the first that does not.
``--json`` and ``--markdown`` print the same outcomes for a pipeline or an issue; nothing is
written to a file unless ``--output`` names one.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..conformance.run import Outcome
    from ..results.settings import Settings

__all__ = ["add_conformance_arguments", "conformance", "markdown_table"]


def add_conformance_arguments(parser: argparse.ArgumentParser) -> None:
    """The URL, the output format and where to write it."""
    parser.add_argument(
        "url",
        nargs="?",
        help="the result_backend URL of the store to check (default: $S3RESULT_URL); credentials as for a worker",
    )
    parser.add_argument(
        "--url",
        dest="url_option",
        metavar="URL",
        help="the same URL given as the other commands take it (s3result check --url ...)",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the outcomes as a Markdown table")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of printing it")
    parser.add_argument("--check", action="append", metavar="NAME", help="run only this check (repeatable)")


def _where(settings: Settings) -> str:
    host = settings.endpoint_url or "Amazon S3"
    return f"{host}, bucket {settings.bucket}" + (f", prefix {settings.prefix}" if settings.prefix else "")


def _line(outcome: Outcome) -> str:
    if outcome.verdict == "pass":
        return f"  pass     {outcome.check}"
    label = "differs " if outcome.verdict == "differs" else "FAIL    "
    return f"  {label} {outcome.check}: {outcome.meaning} (answered {outcome.observed}; S3: {outcome.expected})"


def _verdict(outcomes: list[Outcome]) -> tuple[int, str]:
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("pass", "differs", "fail")}
    summary = f"{len(outcomes)} check{'' if len(outcomes) == 1 else 's'}: {counts['pass']} pass, {counts['differs']} differ, {counts['fail']} fail"
    failed = next((o for o in outcomes if o.verdict == "fail"), None)
    if failed is None:
        return 0, f"{summary}. Every semantic s3result relies on holds on this store."
    return 1, f"{summary}. First that does not hold: {failed.semantic} ({failed.check}): {failed.meaning}"


def markdown_table(outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table: check, verdict, what it means."""
    lines = ["| check | verdict | what it means for s3result |", "|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.check} | {o.verdict} | {'' if o.verdict == 'pass' else o.meaning} |")
    return "\n".join(lines) + "\n"


def conformance(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Run the checks, report them in the asked format, and return the exit status."""
    from ..conformance.run import run_checks

    out = out or sys.stdout
    live = not (args.json or args.markdown or args.output)
    if live:
        out.write(f"s3result conformance: {_where(settings)}\n")
    outcomes: list[Outcome] = []
    for outcome in run_checks(settings, only=args.check):
        outcomes.append(outcome)
        if live:
            out.write(_line(outcome) + "\n")
            out.flush()
    status, verdict = _verdict(outcomes)
    if live:
        out.write(verdict + "\n")
        return status
    report = _report(args, settings, outcomes, status, verdict)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report)
        sys.stderr.write(f"s3result conformance: {verdict} Report written to {args.output}\n")
    else:
        out.write(report)
    return status


def _report(args: argparse.Namespace, settings: Settings, outcomes: list[Outcome], status: int, verdict: str) -> str:
    if args.json:
        doc: dict[str, Any] = {
            "store": _where(settings),
            "ok": status == 0,
            "verdict": verdict,
            "checks": [asdict(o) for o in outcomes],
        }
        return json.dumps(doc, indent=2) + "\n"
    if args.markdown:
        return f"# s3result conformance: {_where(settings)}\n\n{markdown_table(outcomes)}\n{verdict}\n"
    return "".join(_line(o) + "\n" for o in outcomes) + verdict + "\n"
