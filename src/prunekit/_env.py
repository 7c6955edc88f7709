"""Describe the machine a figure was measured on (for reports and the results page)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """e.g. ``"AMD EPYC ... (2 cores), torch 2.14.1, CPU"`` or with the CUDA device name."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, {dev}"
