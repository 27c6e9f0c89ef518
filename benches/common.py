"""Shared by the benchmark scripts: what machine the numbers come from."""

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Iterator


def machine() -> str:
    """Cores, CPU model and Python version, for the header of every table."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


_SERVER = """
import sys
from distilabel_rs import _core
server = _core.MockServer()
print(server.base_url, flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def mock_server_process() -> Iterator[str]:
    """The Rust mock server in its own process (so that it does not share the measured
    client's process); yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        yield server.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        server.kill()
        server.wait()
