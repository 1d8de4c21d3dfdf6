"""The S3 semantics s3result relies on, checked against any store: ``s3result conformance URL``.

It sits on top of the runtime, like the command and the testing kit; nothing in the runtime
imports it. The repository's ``conformance/`` pytest suite runs the same checks over its matrix
of servers (moto, Ceph RGW, nanio).
"""

from __future__ import annotations

__all__: list[str] = []
