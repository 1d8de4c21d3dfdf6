"""The ``s3result`` command: check, demo, get, forget, lifecycle, cost.

It sits on top of the runtime; nothing in the runtime imports it.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
