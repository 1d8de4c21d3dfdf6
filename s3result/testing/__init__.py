"""Tools for testing Celery apps against a local S3 store, ours and users' alike.

``store.MotoServer`` runs moto's S3 server with auth on and atomic conditional writes;
``plugin`` gives pytest fixtures for it (``s3result_store``, ``s3result_backend_url``);
``express.DirectoryBucketFront`` puts an S3 Express One Zone directory bucket (CreateSession,
session-signed requests) in front of that store; ``proxy.CountingProxy`` counts requests at
the wire; ``faults.FaultProxy`` injects lost replies, resets, truncation, 503s, flipped bytes
and outages; ``fsbroker`` is kombu's filesystem broker with atomic writes. Needs the ``testing`` extra (moto); nothing in the runtime imports it.
"""

from __future__ import annotations
