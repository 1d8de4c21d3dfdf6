"""``check``'s expiry layer: does a lifecycle rule expire the prefix, as ``result_expires`` asks?

Its own module so ``check`` stays one screen of layers; the rules themselves are read, merged
and compared in ``expiry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import S3Error
from .findings import Finding, arn, timed

if TYPE_CHECKING:
    from ..results.settings import Settings
    from ..s3.client import S3Client

__all__ = ["expiry_findings"]


def expiry_findings(client: S3Client, settings: Settings, app: Any, *, target: str = "") -> Iterator[Finding]:
    """Whether an enabled lifecycle rule expires what s3result writes under the prefix.

    ``target`` is how the user named the configuration to ``check`` (`` --app proj.celery``),
    so the fix printed is a command that runs as pasted.
    """
    from .expiry import (
        coverage,
        days_from_expires,
        days_text,
        expires_set_by_user,
        negative_expires,
        noncurrent_coverage,
        read_rules,
        rule_id,
        versioned,
    )

    conf = getattr(app, "conf", None)
    given = conf.get("result_expires") if conf is not None and expires_set_by_user(conf) else None
    if negative_expires(given):
        yield Finding("expiry", False, f"result_expires={given!r} is negative", str(negative_expires(given)))
        return
    user_days = days_from_expires(given)
    # result_expires=None (or 0, which Celery reads the same) set on purpose: results are meant to
    # be kept, and lifecycle refuses to derive a rule from it; only --days N expires them anyway.
    keep = conf is not None and user_days is None and expires_set_by_user(conf)
    asked = f"result_expires={given!r}" + (" (Celery keeps results forever for 0, as for None)" if given == 0 else "")

    def apply_command(days: str) -> str:
        command = "s3result lifecycle --apply" + (f" --days {days}" if days else "")
        notes = []
        if not settings.prefix:  # lifecycle refuses a prefix-less rule unless told: it expires the whole bucket
            command += " --whole-bucket"
            notes.append(
                "every object in the bucket then expires; a prefix in result_backend, "
                "s3result://BUCKET/PREFIX, keeps the rule to s3result's keys"
            )
        command += target
        if target.endswith(" URL"):
            notes.append("URL: the same --url as for check")
        return command + (f" ({'; '.join(notes)})" if notes else "")

    apply = apply_command(str(user_days) if user_days else "N" if keep else "")
    where = f"s3://{settings.bucket}/{settings.prefix + '/' if settings.prefix else ''}"
    try:
        rules, ms, error = timed(lambda: read_rules(client))
    except SyntaxError as exc:  # XML the parser cannot read (ElementTree.ParseError)
        yield Finding("expiry", True, f"the bucket's lifecycle configuration is not readable XML ({exc})", warning=True)
        return
    if isinstance(error, S3Error) and error.code == "AccessDenied":
        yield Finding(
            "expiry",
            True,
            "cannot read the bucket's lifecycle configuration (403 AccessDenied), so cannot tell whether results expire",
            f'grant "s3:GetLifecycleConfiguration" on "{arn(settings, False)}" to look '
            '(and "s3:PutLifecycleConfiguration" to let s3result lifecycle --apply set it)',
            ms=ms,
            warning=True,
        )
        return
    if error is not None:
        yield Finding("expiry", True, f"cannot read the bucket's lifecycle configuration: {error}", ms=ms, warning=True)
        return
    rule = coverage(rules, settings.prefix)
    if rule is None and keep:
        yield Finding(
            "expiry",
            True,
            f"no enabled lifecycle rule expires {where}: results, group metas and chord counters are kept "
            f"forever, as {asked} asks (to expire them anyway: {apply})",
            "if you meant results to expire at once or soon, give result_expires in seconds" if given == 0 else "",
            ms=ms,
            warning=given == 0,  # 0 is read as "never" by Celery, and often meant as "at once"
        )
        return
    if rule is None:
        yield Finding(
            "expiry",
            True,
            f"no enabled lifecycle rule expires {where}: results, group metas and chord counters are kept forever",
            apply,
            ms=ms,
            warning=True,
        )
        return
    after = f"after {days_text(rule.days)}" if rule.days is not None else f"on {rule.date}"
    yield Finding("expiry", True, f"lifecycle rule {rule.id!r} expires {where} {after}", ms=ms)
    if noncurrent_coverage(rules, settings.prefix) is None:
        try:
            keeps_versions = versioned(client)
        except Exception:  # noqa: BLE001 - no permission to look, or a store without versioning: nothing to say
            keeps_versions = False
        if keeps_versions:
            yield Finding(
                "expiry",
                True,
                f"the bucket keeps object versions, and rule {rule.id!r} does not expire noncurrent ones: every "
                "overwritten state and every expired or forgotten result stays as a noncurrent version, billed, forever",
                # Our rule after N days: --apply --days N rewrites it with both. A rule of the user's,
                # or ours on a Date (--apply would turn it into "after N days"): named, left as it is.
                apply_command(str(rule.days))
                if rule.id == rule_id(settings.prefix) and rule.days is not None
                else f"add NoncurrentVersionExpiration to rule {rule.id!r}",
                warning=True,
            )
    if keep:
        yield Finding(
            "expiry",
            True,
            f"{asked} asks to keep results, but lifecycle rule {rule.id!r} expires them {after}",
            "remove or change the rule, or set result_expires to how long results are kept",
            warning=True,
        )
    if user_days is not None and rule.days is not None and rule.days > user_days:
        yield Finding(
            "expiry",
            True,
            f"result_expires is {days_text(user_days)}, but the rule keeps results {days_text(rule.days)}",
            apply,
            warning=True,
        )
