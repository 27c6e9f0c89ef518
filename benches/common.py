"""Shared by the benchmark scripts: what machine the numbers come from, the mock server in
its own process, measured clients in fresh processes, and wrk as the server's ceiling."""

import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent


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
        cwd=REPO,
    )
    try:
        yield server.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        server.kill()
        server.wait()


def run_client(script: str, *args: Any) -> Dict[str, Any]:
    """Runs a client script (`python -c script args…`) in a fresh interpreter, where
    `from common import measure` works; returns the JSON its last line prints."""
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(BENCHES)},
    )
    if result.returncode != 0:
        raise SystemExit(f"client {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(generate: Callable[[], List[Any]], count: int) -> List[Any]:
    """Runs `generate` once and prints (as JSON) its requests per second and the client CPU
    per request: user + system time of every thread of this process."""

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start_wall, start_cpu = time.perf_counter(), cpu()
    outputs = generate()
    wall, used = time.perf_counter() - start_wall, cpu() - start_cpu
    result = {"requests_per_second": count / wall, "cpu_us_per_request": used / count * 1e6}
    print(json.dumps(result))
    return outputs


def wrk(url: str, lua: str) -> str:
    """Requests/s of `wrk -t2 -c64 -d5s` against `url` with the request scripted by `lua`:
    the ceiling of the server on this machine."""
    if shutil.which("wrk") is None:
        return "wrk not installed (`apt-get install wrk`)"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    out = subprocess.run(
        ["wrk", "-t2", "-c64", "-d5s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next((line for line in out.splitlines() if line.startswith("Requests/sec")), "")
    return line.split(":", 1)[1].strip() if line else "?"
