"""Where a figure was measured: machine, versions, threads, date (goes into every report)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import Any

import torch

from prunekit._env import cpu_name


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """A JSON-able description of the measuring environment."""
    env: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "device": str(device),
    }
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        env["gpu"] = torch.cuda.get_device_name(idx)
        env["cuda"] = torch.version.cuda
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return env
