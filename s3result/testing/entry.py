"""What pytest's ``pytest11`` entry point (named ``s3result``) loads: only a pointer to the plugin.

The plugin module itself is then registered under its own name, ``s3result.testing.plugin``,
whichever way it was asked for: the entry point, ``-p s3result``, ``-p s3result.testing.plugin``
or a conftest's ``pytest_plugins``. pytest registers a module once per name and refuses one
module under two names ("Plugin already registered under a different name"), so pointing the
entry point at the plugin module directly made ``-p s3result -p s3result.testing.plugin`` fail.
``-p no:s3result`` blocks this pointer, and with it the plugin.
"""

from __future__ import annotations

__all__: list[str] = []

pytest_plugins = ["s3result.testing.plugin"]
