"""Tools for testing Celery apps against a local S3 store, ours and users' alike.

``store.MotoServer`` runs moto's S3 server with auth on and atomic conditional writes;
``plugin`` gives pytest fixtures for it (``s3result_store``, ``s3result_backend_url``);
``proxy.CountingProxy`` counts requests at the wire; ``faults.FaultProxy`` injects lost
replies, resets, truncation, 503s and outages; ``fsbroker`` is kombu's filesystem broker
with atomic writes. Needs the ``testing`` extra (moto); nothing in the runtime imports it.
"""

from __future__ import annotations
