"""What every runtime returns and raises (shared by :mod:`prunekit.bench.runtimes` and the
runtimes it registers, such as :mod:`prunekit.bench.onnx_runtime`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RunFn = Callable[[Any], Any]


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run here (missing device, package or compiler); the message says why."""
