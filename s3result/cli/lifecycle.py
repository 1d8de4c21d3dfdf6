"""The bucket lifecycle rule as text: S3 cannot expire single objects, a rule can.

``s3result lifecycle`` prints it (XML, and the aws / mc commands) for those who apply rules
themselves; ``--apply`` merges the same rule into the bucket (see ``expiry``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .expiry import days_text, rule_id

if TYPE_CHECKING:
    from ..results.config import Settings

__all__ = ["lifecycle_rule", "lifecycle_text"]


def lifecycle_rule(prefix: str, days: int) -> dict[str, object]:
    """The rule, as the JSON the S3 API (and ``aws s3api``) takes."""
    return {
        "Rules": [
            {
                "ID": rule_id(prefix),
                "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
                "Status": "Enabled",
                "Expiration": {"Days": days},
                "NoncurrentVersionExpiration": {"NoncurrentDays": days},
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
        f"  <Rule>\n    <ID>{rule_id(settings.prefix)}</ID>\n    <Filter><Prefix>{prefix}</Prefix></Filter>\n"
        f"    <Status>Enabled</Status>\n    <Expiration><Days>{days}</Days></Expiration>\n"
        f"    <NoncurrentVersionExpiration><NoncurrentDays>{days}</NoncurrentDays></NoncurrentVersionExpiration>\n"
        "  </Rule>\n"
        "</LifecycleConfiguration>\n"
    )
    endpoint = f" --endpoint-url {settings.endpoint_url}" if settings.endpoint_url else ""
    note = (
        "Note: a bucket has one lifecycle configuration; putting this one replaces any other rules.\n"
        "`s3result lifecycle --apply` merges it into the bucket's rules instead (and keeps them).\n"
    )
    whole_bucket = (
        "" if prefix else "Warning: no prefix is configured, so this rule expires every object in the bucket.\n"
    )
    return (
        f"# Expire results under s3://{settings.bucket}/{prefix} {days_text(days)} after they are written.\n"
        f"{whole_bucket}\n"
        f"## S3 XML (PutBucketLifecycleConfiguration)\n\n{xml}\n"
        f"## AWS CLI\n\ncat > lifecycle.json <<'JSON'\n{json.dumps(rule, indent=2)}\nJSON\n"
        f"aws s3api put-bucket-lifecycle-configuration --bucket {settings.bucket}{endpoint} "
        "--lifecycle-configuration file://lifecycle.json\n\n"
        f"## MinIO client\n\nmc ilm rule add --expire-days {days} --noncurrent-expire-days {days} --prefix '{prefix}' ALIAS/{settings.bucket}\n\n{note}"
    )
