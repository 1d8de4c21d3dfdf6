"""Bucket lifecycle rules and cost arithmetic: S3 cannot expire single objects, a rule can.

Pure text and numbers; the ``s3result lifecycle`` and ``s3result cost`` commands print them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["lifecycle_rule", "lifecycle_text", "monthly_cost"]


def lifecycle_rule(prefix: str, days: int) -> dict[str, object]:
    """The rule, as the JSON the S3 API (and ``aws s3api``) takes."""
    return {
        "Rules": [
            {
                "ID": f"s3result-expire-{days}d",
                "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
                "Status": "Enabled",
                "Expiration": {"Days": days},
            }
        ]
    }


def lifecycle_text(settings: Settings, days: int) -> str:
    """The rule as S3 XML, plus the ``aws`` and ``mc`` commands that apply it."""
    if days < 1:
        raise ValueError("--days must be at least 1 (S3 counts whole days)")
    prefix = f"{settings.prefix}/" if settings.prefix else ""
    rule = lifecycle_rule(settings.prefix, days)
    xml = (
        '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n'
        f"  <Rule>\n    <ID>s3result-expire-{days}d</ID>\n    <Filter><Prefix>{prefix}</Prefix></Filter>\n"
        f"    <Status>Enabled</Status>\n    <Expiration><Days>{days}</Days></Expiration>\n  </Rule>\n"
        "</LifecycleConfiguration>\n"
    )
    endpoint = f" --endpoint-url {settings.endpoint_url}" if settings.endpoint_url else ""
    note = (
        "Note: a bucket has one lifecycle configuration; putting this one replaces any other rules.\n"
        "Merge it with `aws s3api get-bucket-lifecycle-configuration` first if the bucket has some.\n"
    )
    whole_bucket = (
        "" if prefix else "Warning: no prefix is configured, so this rule expires every object in the bucket.\n"
    )
    return (
        f"# Expire results under s3://{settings.bucket}/{prefix} {days} day(s) after they are written.\n"
        f"{whole_bucket}\n"
        f"## S3 XML (PutBucketLifecycleConfiguration)\n\n{xml}\n"
        f"## AWS CLI\n\ncat > lifecycle.json <<'JSON'\n{json.dumps(rule, indent=2)}\nJSON\n"
        f"aws s3api put-bucket-lifecycle-configuration --bucket {settings.bucket}{endpoint} "
        "--lifecycle-configuration file://lifecycle.json\n\n"
        f"## MinIO client\n\nmc ilm rule add --expire-days {days} --prefix '{prefix}' ALIAS/{settings.bucket}\n\n{note}"
    )


def monthly_cost(
    *,
    tasks_per_day: int,
    reads_per_task: float,
    polls_per_task: float,
    states_per_task: float,
    result_bytes: int,
    retention_days: float,
    put_per_1000: float,
    get_per_1000: float,
    storage_gb_month: float,
) -> str:
    """Requests and storage per 30-day month, with s3result's request pattern.

    Per task: one PUT per stored state (conditional, no read first), one GET per result read
    and per pending poll, and nothing else; results live ``retention_days`` (lifecycle rule).
    """
    month = 30 * tasks_per_day
    puts = month * states_per_task
    gets = month * (reads_per_task + polls_per_task)
    stored_gb = tasks_per_day * retention_days * result_bytes / 1e9
    put_cost, get_cost, storage_cost = (
        puts / 1000 * put_per_1000,
        gets / 1000 * get_per_1000,
        stored_gb * storage_gb_month,
    )
    total = put_cost + get_cost + storage_cost
    return (
        f"{tasks_per_day:,} tasks/day, {month:,} per month\n"
        f"  PUT  {puts:>14,.0f} requests x ${put_per_1000}/1000 = ${put_cost:,.2f}\n"
        f"  GET  {gets:>14,.0f} requests x ${get_per_1000}/1000 = ${get_cost:,.2f}\n"
        f"  storage {stored_gb:,.4f} GB kept ({retention_days:g} days x {result_bytes} B) x ${storage_gb_month}/GB-month = ${storage_cost:,.2f}\n"
        f"  total ${total:,.2f} per month\n"
        "  (DELETE is free on S3; lifecycle expirations are free. Prices are parameters: --put-price, --get-price, --storage-price.)\n"
    )
