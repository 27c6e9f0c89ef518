import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tests.zoo.dl as zoo_dl
import tests.zoo.rs as zoo_rs


@pytest.fixture(params=["rs", "dl"])
def zoo(request: pytest.FixtureRequest) -> Any:
    """The zoo on each library, for tests that must hold for both."""
    return zoo_rs if request.param == "rs" else zoo_dl


# The runtime parameters distilabel_rs adds to `AsyncLLM` (the fan-out engine's), in order.
FANOUT_FIELDS = [
    "max_concurrency",
    "max_request_retries",
    "retry_backoff_base",
    "retry_backoff_max",
    "requests_per_minute",
    "error_policy",
    "progress_bar",
]


def without_fanout_fields(value: Any) -> Any:
    """A dump, names dict or info list without the fan-out engine's fields."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in FANOUT_FIELDS}
    return [item for item in value if item.get("name") not in FANOUT_FIELDS]


def same_modules(value: Any) -> Any:
    """`value` with the zoo module names made equal, to compare dumps across libraries."""
    if isinstance(value, dict):
        return {k: same_modules(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(same_modules(v) for v in value)
    if value in ("tests.zoo.rs", "tests.zoo.dl"):
        return "tests.zoo"
    return value


@pytest.fixture(autouse=True)
def _no_sigint_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("sigint_handler_called", raising=False)
    os.environ.pop("ZOO_API_KEY", None)


REPO = str(Path(__file__).resolve().parents[1])


# A test runner started in the background without job control (`cmd &` in a script, nohup)
# hands its children SIGINT ignored, and Python then never turns Ctrl-C into
# KeyboardInterrupt; the scripts that send themselves SIGINT need it as a terminal gives it.
_CTRL_C_RAISES = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` (dedented) in a fresh interpreter at the repository root; a hang fails
    the test at `timeout`."""
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _CTRL_C_RAISES + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
