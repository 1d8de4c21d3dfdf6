"""``python -m s3result.cli``: the ``s3result`` command without its console script."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
