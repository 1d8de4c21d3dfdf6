"""A user's Celery app module, for `s3result check --app tests.cliapp.celery`."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("cliapp")
app.conf.result_backend = os.environ.get("CLIAPP_BACKEND", "s3result://unset-bucket")
app.conf.result_expires = None
