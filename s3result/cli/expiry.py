"""Results that expire: the bucket's lifecycle rules, read, merged and checked.

S3 cannot expire single objects; a lifecycle rule on the prefix can, and one rule covers all
s3result writes there: results, group metas, chord counters and the probe keys (all keys are
``<prefix>/...``). ``s3result lifecycle --apply`` GETs the bucket's configuration, adds or
updates only its own rule (every other rule is kept as it was), and PUTs it back with the
Content-MD5 that PutBucketLifecycleConfiguration requires; a second run finds the rule in place
and changes nothing. ``check`` uses ``coverage`` to say whether an enabled rule covers the prefix.

These are bucket subresource calls made by the command only (``S3Client.bucket_request``);
workers never send them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, NotFound

if TYPE_CHECKING:
    from ..s3.client import S3Client

__all__ = [
    "Applied",
    "RuleInfo",
    "apply_rule",
    "coverage",
    "days_from_expires",
    "days_text",
    "expires_seconds",
    "expires_set_by_user",
    "info",
    "negative_expires",
    "noncurrent_coverage",
    "parse_rules",
    "read_rules",
    "rule_id",
    "to_xml",
    "versioned",
]


def days_text(count: float) -> str:
    """``1 day``, ``2 days``, ``0.5 days``: never ``1 days`` nor ``day(s)``."""
    return f"{count:g} day" if count == 1 else f"{count:g} days"


_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class RuleInfo:
    """What matters of one rule for expiry: who it is, what it filters, when it expires."""

    id: str
    prefix: str | None  # None when the rule filters on tags or sizes too: it may skip results
    enabled: bool
    days: int | None
    date: str | None
    noncurrent_days: int | None = None  # NoncurrentVersionExpiration: what a versioned bucket needs too


@dataclass(frozen=True)
class Applied:
    """What ``apply_rule`` did: ``changed`` False when the rule was already in place."""

    changed: bool
    message: str


def rule_id(prefix: str) -> str:
    """Our rule's ID, one per prefix, so re-running updates it instead of adding another."""
    return f"s3result-expire-{prefix}/" if prefix else "s3result-expire-whole-bucket"


def _strip(el: ET.Element) -> ET.Element:
    """A copy without XML namespaces: S3 answers with one, and we write the same tags back."""
    out = ET.Element(el.tag.rsplit("}", 1)[-1])
    out.text = el.text
    for child in el:
        out.append(_strip(child))
    return out


def _text(el: ET.Element, path: str) -> str | None:
    found = el.find(path)
    return None if found is None else (found.text or "")


def parse_rules(xml: bytes) -> list[ET.Element]:
    """The ``Rule`` elements of a LifecycleConfiguration, namespaces stripped."""
    root = _strip(ET.fromstring(xml))
    return root.findall("Rule")


def info(rule: ET.Element) -> RuleInfo:
    """Read one rule: its filter's prefix (legacy ``Prefix`` too), status and expiration."""
    prefix: str | None
    filt = rule.find("Filter")
    if filt is None:
        prefix = _text(rule, "Prefix") or ""
    elif len(filt) == 0:
        prefix = ""
    elif filt.find("Prefix") is not None and len(filt) == 1:
        prefix = _text(filt, "Prefix") or ""
    else:
        and_ = filt.find("And")
        narrows = and_ is not None and any(child.tag != "Prefix" for child in and_)
        prefix = None if and_ is None or narrows else (_text(and_, "Prefix") or "")
    days = _text(rule, "Expiration/Days")
    noncurrent = _text(rule, "NoncurrentVersionExpiration/NoncurrentDays")
    return RuleInfo(
        id=_text(rule, "ID") or "",
        prefix=prefix,
        enabled=(_text(rule, "Status") or "") == "Enabled",
        days=int(days) if days and days.isdigit() else None,
        date=_text(rule, "Expiration/Date"),
        noncurrent_days=int(noncurrent) if noncurrent and noncurrent.isdigit() else None,
    )


def coverage(rules: list[ET.Element], prefix: str) -> RuleInfo | None:
    """The enabled rule that expires everything under ``prefix`` soonest, or None."""
    target = f"{prefix}/" if prefix else ""
    covering = [
        r
        for r in map(info, rules)
        if r.enabled and r.prefix is not None and target.startswith(r.prefix) and (r.days or r.date)
    ]
    if not covering:
        return None
    return min(covering, key=lambda r: r.days if r.days is not None else 0)


def noncurrent_coverage(rules: list[ET.Element], prefix: str) -> RuleInfo | None:
    """The enabled rule that expires noncurrent versions of everything under ``prefix``, or None.

    Any rule does it, not only the one that expires current objects: a versioned bucket often
    has one rule for every noncurrent version (``Filter {}``) beside its other rules.
    """
    target = f"{prefix}/" if prefix else ""
    covering = [
        r
        for r in map(info, rules)
        if r.enabled and r.prefix is not None and target.startswith(r.prefix) and r.noncurrent_days is not None
    ]
    return min(covering, key=lambda r: r.noncurrent_days or 0) if covering else None


def versioned(client: S3Client) -> bool:
    """Whether the bucket keeps object versions (versioning Enabled, or Suspended with old ones)."""
    resp = client.bucket_request("GET", "versioning")
    status = _text(_strip(ET.fromstring(resp.body)), "Status")
    return status in ("Enabled", "Suspended")


def read_rules(client: S3Client) -> list[ET.Element]:
    """GET the bucket's lifecycle configuration; no configuration at all is no rules."""
    try:
        resp = client.bucket_request("GET", "lifecycle")
    except NotFound as exc:
        if exc.code == "NoSuchLifecycleConfiguration":
            return []
        raise
    return parse_rules(resp.body)


def _our_rule(prefix: str, days: int) -> ET.Element:
    rule = ET.Element("Rule")
    ET.SubElement(rule, "ID").text = rule_id(prefix)
    ET.SubElement(ET.SubElement(rule, "Filter"), "Prefix").text = f"{prefix}/" if prefix else ""
    ET.SubElement(rule, "Status").text = "Enabled"
    ET.SubElement(ET.SubElement(rule, "Expiration"), "Days").text = str(days)
    # On a versioned bucket, expiring (or overwriting: STARTED, then SUCCESS) leaves the old
    # version behind as noncurrent, billed forever unless this expires it too. Harmless elsewhere.
    noncurrent = ET.SubElement(rule, "NoncurrentVersionExpiration")
    ET.SubElement(noncurrent, "NoncurrentDays").text = str(days)
    return rule


def to_xml(rules: list[ET.Element]) -> bytes:
    """A LifecycleConfiguration document holding ``rules``."""
    root = ET.Element("LifecycleConfiguration", {"xmlns": _NS})
    root.extend(rules)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _denied(exc: AccessDenied, bucket: str) -> AccessDenied:
    """A 403 on ``?lifecycle`` with the bucket permission it lacks, not the object grants of a result key."""
    action = "s3:GetLifecycleConfiguration" if exc.method == "GET" else "s3:PutLifecycleConfiguration"
    hint = (
        f'grant "{action}" on "arn:aws:s3:::{bucket}" to these credentials (--apply needs '
        "s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration), or apply the rule that "
        "s3result lifecycle prints with credentials that may"
    )
    fields = {k: getattr(exc, k) for k in ("status", "code", "message", "request_id", "key", "method", "region")}
    return AccessDenied(**fields, hint=hint)


def apply_rule(client: S3Client, prefix: str, days: int) -> Applied:
    """Merge our expiration rule into the bucket's configuration; PUT only when it changes."""
    try:
        return _apply_rule(client, prefix, days)
    except AccessDenied as exc:
        if exc.code != "AccessDenied":  # a wrong signature is not a missing permission
            raise
        raise _denied(exc, client.config.bucket) from None


def _apply_rule(client: S3Client, prefix: str, days: int) -> Applied:
    rules = read_rules(client)
    wanted = _our_rule(prefix, days)
    ours = [r for r in rules if info(r).id == rule_id(prefix)]
    where = f"s3://{client.config.bucket}/{prefix + '/' if prefix else ''}"
    if len(ours) == 1 and info(ours[0]) == info(wanted):  # stores echo rules back in their own form
        return Applied(
            False, f"already applied: rule {rule_id(prefix)!r} expires {where} after {days_text(days)}; nothing changed"
        )
    kept = [r for r in rules if info(r).id != rule_id(prefix)]
    body = to_xml([*kept, wanted])
    md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    # S3 refuses PutBucketLifecycleConfiguration without an integrity checksum:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html
    client.bucket_request(
        "PUT", "lifecycle", body=body, headers=[("content-md5", md5), ("content-type", "application/xml")]
    )
    verb = "updated" if ours else "added"
    others = f"; kept {len(kept)} other rule(s)" if kept else ""
    # A rule of our ID over another prefix was edited by hand: say what it covered, it no longer does.
    moved = sorted({f"{info(r).prefix!r}" for r in ours if info(r).prefix != info(wanted).prefix})
    was = f"; it covered {', '.join(moved)} before, which it no longer expires" if moved else ""
    return Applied(True, f"{verb} rule {rule_id(prefix)!r}: {where} expires after {days_text(days)}{others}{was}")


def expires_set_by_user(conf: Any) -> bool:
    """Whether the app's config sets ``result_expires`` (Celery's default of 1 day is not "set")."""
    conf.get("result_expires")  # finalizes Celery's lazy config: its layers exist from then on
    maps = getattr(conf, "maps", None)
    if not maps or len(maps) < 2:
        return False
    names = ("result_expires", "CELERY_TASK_RESULT_EXPIRES")
    return any(name in layer for layer in maps[:-1] for name in names)  # the last layer is Celery's defaults


def expires_seconds(value: Any) -> float | None:
    """``result_expires`` in seconds (a number or a timedelta); None for None."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def negative_expires(value: Any) -> str | None:
    """The one-line error for a negative ``result_expires``, or None.

    Celery keeps results forever for None and 0 (``result_expires`` in its configuration docs:
    "A value of None or 0 means results will never expire"); a negative value has no meaning
    there (``Backend.prepare_expires`` passes it on as it is), nor as a lifecycle rule.
    """
    seconds = expires_seconds(value)
    if seconds is None or seconds >= 0:
        return None
    return (
        f"result_expires is {value!r}, a negative time: set it to the seconds results are kept "
        "(86400: a day), or to None (or 0) to keep them forever"
    )


def days_from_expires(value: Any) -> int | None:
    """``result_expires`` (seconds or a timedelta) as whole days, rounded up; None when kept forever (None, 0)."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if seconds <= 0:
        return None
    return max(1, math.ceil(seconds / 86400))
