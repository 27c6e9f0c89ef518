"""Shared by the benchmark scripts: what machine the numbers come from."""

import os
import platform


def machine() -> str:
    """Cores, CPU model and Python version, for the header of every table."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
