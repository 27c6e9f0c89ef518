import os
from typing import Any

import pytest

import tests.zoo.dl as zoo_dl
import tests.zoo.rs as zoo_rs


@pytest.fixture(params=["rs", "dl"])
def zoo(request: pytest.FixtureRequest) -> Any:
    """The zoo on each library, for tests that must hold for both."""
    return zoo_rs if request.param == "rs" else zoo_dl


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
