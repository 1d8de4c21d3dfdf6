"""A small S3 client that stands on its own: no Celery, no kombu, no result-backend vocabulary."""
