"""The result store and what it stands on: settings, keys, race-free writes, the conditional-write verdict."""
