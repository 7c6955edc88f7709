"""Command modules: each exposes ``register(app)``; :mod:`prunekit.cli` imports one when its
command runs."""

import prunekit.serialize  # noqa: F401 - registers saved prunekit directories with prunekit.io
