"""Helpers shared by the LLMs that wrap a provider's Python SDK (imported lazily).

The SDKs are optional dependencies, imported in `load()`: which of their errors are worth a
retry can therefore only be known once they are imported, from `sys.modules`.
"""

import sys
from typing import Iterable, Optional, Tuple, Type

__all__ = ["RETRYABLE_STATUS_CODES", "has_retryable_status", "install_hint", "sdk_errors"]

# Request timeout, conflict, rate limit and server errors.
RETRYABLE_STATUS_CODES = frozenset({408, 409, 429, 500, 502, 503, 504})


def install_hint(extra: str) -> str:
    """The command that installs an optional dependency of distilabel_rs."""
    return f"`pip install 'distilabel-rs[{extra}]'`"


def sdk_errors(module: str, names: Iterable[str]) -> Tuple[Type[BaseException], ...]:
    """The exception classes called `names` in `module`, if that module is already
    imported (those it does not have are skipped: SDK versions differ).

    Args:
        module: the module's import path, e.g. "litellm".
        names: the names of exception classes in it.

    Returns:
        The classes found.
    """
    found = sys.modules.get(module)
    if found is None:
        return ()
    classes = []
    for name in names:
        value = getattr(found, name, None)
        if isinstance(value, type) and issubclass(value, BaseException):
            classes.append(value)
    return tuple(classes)


def has_retryable_status(error: BaseException) -> bool:
    """Whether the error carries an HTTP status worth a retry (`status_code` attribute)."""
    status: Optional[object] = getattr(error, "status_code", None)
    return isinstance(status, int) and status in RETRYABLE_STATUS_CODES
